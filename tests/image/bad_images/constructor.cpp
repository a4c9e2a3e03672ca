// Not an image: a global with a constructor needs .init_array, which no loader runs.
struct counter {
    counter();
    volatile int n;
};
counter::counter() : n(1) {}
counter global_counter;
extern "C" [[gnu::visibility("default")]] int npa_image_entry() { return global_counter.n; }
