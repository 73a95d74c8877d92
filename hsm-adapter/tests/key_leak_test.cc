// Invariant 6 of the architecture: no key material in clear in RocksDB, logs or errors.
//
// For each backend: 1,000 keys are imported, wrapped for storage into a RocksDB, read back,
// used for SHE (as new keys under one transport key), sealed for a peer, and pushed through
// error paths. Then every file of the database, the captured log and every error text are
// scanned for each key's 16 raw bytes and its hex (either case). A planted key proves the
// scanner finds what it looks for.
#define BOOST_TEST_MODULE hsm_key_leak
#include <boost/test/unit_test.hpp>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "custody_checks.h"
#include "keyline/hsm/pkcs11_custody.h"
#include "keyline/hsm/software_custody.h"
#include "softhsm_fixture.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::hsm {
namespace {

constexpr int kKeys = 1000;

// Finds any of a set of 16-byte keys (raw) or their 32-digit hex in a byte string.
class KeyScanner {
 public:
  void Add(const std::vector<uint8_t>& key) {
    raw_.insert(std::string(key.begin(), key.end()));
    hex_.insert(ToHex(key));
  }
  // The number of positions where some key appears.
  size_t Count(const std::string& data) const {
    size_t hits = 0;
    for (size_t i = 0; i + 16 <= data.size(); ++i) {
      if (raw_.count(data.substr(i, 16)) != 0) ++hits;
    }
    std::string lower = data;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (size_t i = 0; i + 32 <= lower.size(); ++i) {
      if (hex_.count(lower.substr(i, 32)) != 0) ++hits;
    }
    return hits;
  }

 private:
  std::unordered_set<std::string> raw_;
  std::unordered_set<std::string> hex_;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Check(const rocksdb::Status& status) { BOOST_REQUIRE_MESSAGE(status.ok(), status.ToString()); }

// Runs the whole life of 1,000 keys through `custody` and scans what it left behind.
void StoreUseAndScan(KeyCustody& custody, const std::string& name) {
  keyline::testing::TempDir dir;
  std::ostringstream log_text;
  auto previous_logger = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "leak-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);

  std::mt19937_64 rng(4242);
  KeyScanner scanner;
  std::vector<std::string> errors;
  auto note_error = [&](const Status& status) {
    BOOST_REQUIRE(!status.ok());
    errors.push_back(status.ToString());
    spdlog::error("{}", status.ToString());
  };

  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression;  // so that the scan sees every stored byte
  rocksdb::DB* raw_db = nullptr;
  Check(rocksdb::DB::Open(options, (dir.path() / "db").string(), &raw_db));
  std::unique_ptr<rocksdb::DB> db(raw_db);

  KeyHandle transport = KL_VALUE(custody.GenerateKey(KeyKind::kAes128));
  KeyHandle peer = KL_VALUE(custody.GenerateKey(KeyKind::kX25519));
  PublicKey peer_public = KL_VALUE(custody.GetPublicKey(peer));

  // Import and store.
  for (int i = 0; i < kKeys; ++i) {
    std::vector<uint8_t> key(16);
    for (uint8_t& b : key) b = static_cast<uint8_t>(rng());
    scanner.Add(key);
    std::string hex = ToHex(key);
    KeyHandle handle = KL_VALUE(custody.ImportKeyFromHex(KeyKind::kAes128, hex, "oem key"));
    std::string context = "keyset/" + std::to_string(i) + "/slot/1";
    WrappedKey blob = KL_VALUE(custody.WrapForStorage(handle, context));
    Check(db->Put(rocksdb::WriteOptions(), context,
                  rocksdb::Slice(reinterpret_cast<const char*>(blob.bytes.data()), blob.bytes.size())));
    spdlog::info("stored {} as {} kcv {}", context, handle.id,
                 ToHex(KL_VALUE(custody.KeyCheckValue(handle))));
    KL_REQUIRE_OK(custody.DestroyKey(handle));
    // An engineer's typo: the error must not repeat the other digits.
    hex[31] = 'x';
    note_error(custody.ImportKeyFromHex(KeyKind::kAes128, hex, "--new-key").status());
  }
  Check(db->Flush(rocksdb::FlushOptions()));

  // Use: read back, unwrap, load into an ECU (M1..M3), check the proof, seal for a peer.
  SheProofFields fields;
  fields.uid[14] = 1;
  fields.slot = kSheSlotMasterEcuKey;
  fields.auth_slot = kSheSlotMasterEcuKey;
  std::vector<KeyHandle> batch;
  for (int i = 0; i < kKeys; ++i) {
    std::string context = "keyset/" + std::to_string(i) + "/slot/1";
    std::string value;
    Check(db->Get(rocksdb::ReadOptions(), context, &value));
    WrappedKey blob{std::vector<uint8_t>(value.begin(), value.end())};
    KeyHandle handle = KL_VALUE(custody.UnwrapFromStorage(blob, context));
    fields.counter = static_cast<uint32_t>(i + 1);
    SheLoadMessages m = KL_VALUE(custody.ComputeSheLoad({transport, handle, fields, 0}));
    SheProof proof = KL_VALUE(custody.ComputeSheProof(handle, fields));
    BOOST_REQUIRE(KL_VALUE(custody.CheckSheProof(handle, proof)).valid);
    spdlog::info("keyset {} M1 {} M2 {} M3 {} M4 {} M5 {}", i, ToHex(m.m1), ToHex(m.m2),
                 ToHex(m.m3), ToHex(proof.m4), ToHex(proof.m5));
    Check(db->Put(rocksdb::WriteOptions(), "proof/" + std::to_string(i),
                  ToHex(proof.m4) + ToHex(proof.m5)));
    // Error paths: another context, a damaged blob.
    note_error(custody.UnwrapFromStorage(blob, context + "x").status());
    blob.bytes[blob.bytes.size() / 2] ^= 0x40;
    note_error(custody.UnwrapFromStorage(blob, context).status());
    batch.push_back(handle);
    if (batch.size() == 100) {
      WrappedKeySet set = KL_VALUE(custody.WrapForPeer(batch, peer_public, "batch/" + std::to_string(i)));
      Check(db->Put(rocksdb::WriteOptions(), "batch/" + std::to_string(i),
                    rocksdb::Slice(reinterpret_cast<const char*>(set.bytes.data()), set.bytes.size())));
      note_error(custody.UnwrapFromPeer(peer, set, "wrong").status());
      for (KeyHandle h : batch) KL_REQUIRE_OK(custody.DestroyKey(h));
      batch.clear();
    }
  }
  Check(db->Flush(rocksdb::FlushOptions()));
  Check(db->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr));
  Check(db->Close());
  db.reset();
  logger->flush();
  spdlog::set_default_logger(previous_logger);

  size_t files = 0;
  size_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file()) continue;
    std::string data = ReadFile(entry.path());
    ++files;
    bytes += data.size();
    BOOST_TEST(scanner.Count(data) == 0u, name << ": key bytes in " << entry.path().string());
  }
  BOOST_TEST_MESSAGE(name << ": scanned " << files << " RocksDB files, " << bytes << " bytes, "
                          << log_text.str().size() << " bytes of log, " << errors.size()
                          << " error texts");
  BOOST_TEST(files > 3u);
  BOOST_TEST(bytes > 100000u);
  BOOST_TEST(scanner.Count(log_text.str()) == 0u, name << ": key bytes in the log");
  std::string all_errors;
  for (const std::string& e : errors) all_errors += e + "\n";
  BOOST_TEST(errors.size() == static_cast<size_t>(kKeys * 3 + kKeys / 100));
  BOOST_TEST(scanner.Count(all_errors) == 0u, name << ": key bytes in an error text");

  // The scanner itself finds a key that is there, raw or as upper-case hex.
  std::mt19937_64 replay(4242);
  std::vector<uint8_t> first(16);
  for (uint8_t& b : first) b = static_cast<uint8_t>(replay());
  std::string planted = "xx" + std::string(first.begin(), first.end()) + "yy";
  BOOST_TEST(scanner.Count(planted) == 1u);
  std::string upper = ToHex(first);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  BOOST_TEST(scanner.Count("key=" + upper) == 1u);
}

BOOST_AUTO_TEST_CASE(SoftwareBackendLeavesNoKeyBytesInRocksDbLogsOrErrors) {
  keyline::testing::TempDir dir;
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, {}));
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  auto custody = KL_VALUE(CreateSoftwareCustody(options));
  StoreUseAndScan(*custody, "software");
}

BOOST_AUTO_TEST_CASE(Pkcs11BackendLeavesNoKeyBytesInRocksDbLogsOrErrors) {
  auto custody = KL_VALUE(CreatePkcs11Custody(testing::TokenOptions(testing::kTokenA)));
  StoreUseAndScan(*custody, "pkcs11");
}

}  // namespace
}  // namespace keyline::hsm
