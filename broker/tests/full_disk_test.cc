// A full disk under a live MessageStore (a small tmpfs, so this test needs root; CI runs as
// root): the producer gets a clear RESOURCE_EXHAUSTED error, nothing is lost or half-written,
// and writes succeed again once space returns, without a restart.
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <boost/test/unit_test.hpp>

#include "keyline/broker/database.h"
#include "keyline/broker/message_store.h"
#include "keyline/testing/temp_dir.h"
#include "keyline/wire/envelope_generated.h"

namespace keyline::broker {
namespace {

// Unmounts on scope exit, whatever the test did.
struct SmallDisk {
  explicit SmallDisk(const std::filesystem::path& where, const char* size) : path(where) {
    std::filesystem::create_directories(path);
    std::string options = std::string("size=") + size;
    mounted = mount("keyline-full-disk", path.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted) umount2(path.c_str(), MNT_DETACH);
  }
  std::filesystem::path path;
  bool mounted = false;
};

Status SendBlob(MessageStore& store, size_t bytes) {
  std::vector<uint8_t> payload(bytes, 0x5a);
  return store.Commit([&](WriteContext& write) -> Status {
    return write.Send({"kms", "records"}, wire::MessageType::InjectionRecord, payload).status();
  });
}

BOOST_AUTO_TEST_SUITE(FullDiskTests)

BOOST_AUTO_TEST_CASE(FullDiskIsAClearErrorLosesNothingAndRecovers) {
  if (geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: mounting a small tmpfs needs root (CI runs as root)");
    return;
  }
  keyline::testing::TempDir dir;
  SmallDisk disk(dir.path() / "disk", "160m");
  BOOST_REQUIRE_MESSAGE(disk.mounted, "mounting a tmpfs failed: " << std::strerror(errno));
  // Space that the test gives back later, as an operator would by cleaning up. RocksDB clears
  // its error only with 64 MiB free (its SstFileManager reserve), hence the sizes.
  {
    std::ofstream filler(disk.path / "filler", std::ios::binary);
    std::string block(1 << 20, 'f');
    for (int i = 0; i < 80; ++i) filler << block;
  }

  auto database = Database::Open({.path = disk.path / "db"});
  BOOST_REQUIRE_MESSAGE(database.ok(), database.status().ToString());
  auto store = MessageStore::Open(database->get(), {.self = "plant-a"});
  BOOST_REQUIRE(store.ok());

  uint64_t accepted = 0;
  Status refused;
  for (int i = 0; i < 100000; ++i) {
    Status s = SendBlob(**store, 64 * 1024);
    if (!s.ok()) {
      refused = s;
      break;
    }
    ++accepted;
  }
  BOOST_TEST_MESSAGE("accepted " << accepted << " messages of 64 KiB before the disk filled");
  BOOST_REQUIRE(!refused.ok());
  BOOST_TEST(refused.code() == StatusCode::kResourceExhausted, refused.ToString());
  BOOST_TEST(refused.message().find("disk full") != std::string::npos, refused.message());
  // Nothing half-written: the queue holds exactly the accepted messages.
  BOOST_TEST((*store)->LastSequence({"kms", "records"}) == accepted);
  // Still full: still refused, still clearly.
  BOOST_TEST(SendBlob(**store, 64 * 1024).code() == StatusCode::kResourceExhausted);

  std::filesystem::remove(disk.path / "filler");
  Status resumed;
  // RocksDB notices the space by itself (it polls every few seconds) and clears its error.
  for (int attempt = 0; attempt < 300; ++attempt) {
    resumed = SendBlob(**store, 1024);
    if (resumed.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_TEST(resumed.ok(), resumed.ToString());
  BOOST_TEST((*store)->LastSequence({"kms", "records"}) == accepted + 1);

  // And after a restart, the same.
  store->reset();
  database->reset();
  auto reopened = Database::Open({.path = disk.path / "db"});
  BOOST_REQUIRE_MESSAGE(reopened.ok(), reopened.status().ToString());
  auto again = MessageStore::Open(reopened->get(), {.self = "plant-a"});
  BOOST_REQUIRE(again.ok());
  BOOST_TEST((*again)->LastSequence({"kms", "records"}) == accepted + 1);
  auto messages = (*again)->Read({"kms", "records"}, 1, 100000, size_t{1} << 30);
  BOOST_REQUIRE(messages.ok());
  BOOST_TEST(messages->size() == accepted + 1);
  again->reset();
  reopened->reset();
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::broker
