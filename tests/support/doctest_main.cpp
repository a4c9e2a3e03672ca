// The main() of every test program that does not declare OWN_MAIN in npa_add_test().
#include <doctest/doctest.h>

int main(int argc, char** argv) { return doctest::Context(argc, argv).run(); }
