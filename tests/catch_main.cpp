// The one translation unit that compiles Catch2's main (slow to build; shared by all tests).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
