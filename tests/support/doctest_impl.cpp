// doctest's implementation, compiled once per build tree for every test program
// (npa_doctest_impl in tests/CMakeLists.txt) instead of once in each test's source.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
