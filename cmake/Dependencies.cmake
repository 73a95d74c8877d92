# Third-party packages, each found the way its Debian package supports
# (CMake config where it ships one, pkg-config otherwise). See TOOLCHAIN notes in docs/.
find_package(PkgConfig REQUIRED)

find_package(Threads REQUIRED)
find_package(FlatBuffers CONFIG REQUIRED)
# Always link RocksDB::rocksdb-shared, never RocksDB::rocksdb (static): one binary holding both
# gets two copies of RocksDB's globals, and ASan sees them freed twice at exit.
find_package(RocksDB CONFIG REQUIRED)
find_package(cppzmq CONFIG REQUIRED)          # libzmq itself comes through pkg-config
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
find_package(OpenSSL 3.0 REQUIRED COMPONENTS Crypto)
find_package(spdlog CONFIG REQUIRED)
find_package(tomlplusplus CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS unit_test_framework)
find_path(PKCS11_INCLUDE_DIR p11-kit/pkcs11.h PATH_SUFFIXES p11-kit-1 REQUIRED)
