// A freestanding shared object like an image's, linked so that its code is writable
// (-Wl,-N): the pack tool refuses the writable-and-executable segment.
extern "C" [[gnu::visibility("default")]] int npa_image_entry(int x) { return x + 1; }
