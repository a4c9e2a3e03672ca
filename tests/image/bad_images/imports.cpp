// Not an image: it calls a function it does not define, which only the host could give.
extern "C" int host_function(int);
extern "C" [[gnu::visibility("default")]] int npa_image_entry(int x) { return host_function(x); }
