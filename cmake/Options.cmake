# Build options. Every option has a one-line reason and its default.

# Treat compiler warnings as errors (default OFF for people; scripts/test and CI turn it ON).
option(KEYLINE_WERROR "Treat warnings as errors" OFF)
# Build with AddressSanitizer + UndefinedBehaviorSanitizer (default OFF; scripts/test turns it ON).
option(KEYLINE_SANITIZE "Build with ASan and UBSan" OFF)
# Build only the decoders and their libFuzzer targets, with clang (default OFF; scripts/fuzz turns it ON).
option(KEYLINE_FUZZ "Build the libFuzzer targets in tests/fuzz only (clang)" OFF)

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

# Every executable lands in <build>/bin so scripts and people find them in one place.
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(CMAKE_ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()

# Flags applied to Keyline's own targets only (third-party headers come in as SYSTEM).
set(KEYLINE_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2
    # Options structs are filled with designated initializers; unnamed fields keep defaults.
    -Wno-missing-field-initializers)
if(KEYLINE_WERROR)
  list(APPEND KEYLINE_WARNING_FLAGS -Werror)
endif()

set(KEYLINE_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer)
if(KEYLINE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KEYLINE_FUZZ=ON needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14, as scripts/fuzz does")
  endif()
  # Every object of the fuzz build is instrumented for coverage; only the fuzz targets link
  # libFuzzer's main (-fsanitize=fuzzer, in tests/fuzz). ASan and UBSan are always on there.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(KEYLINE_SANITIZE OR KEYLINE_FUZZ)
  add_compile_options(${KEYLINE_SANITIZER_FLAGS})
  add_link_options(${KEYLINE_SANITIZER_FLAGS})
endif()
