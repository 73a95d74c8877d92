#include "keyline/broker/database.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <spdlog/spdlog.h>

#include "keys.h"
#include "rocksdb_status.h"

namespace keyline::broker {
namespace {

// RocksDB's own diagnostics go to the service's log, not to a LOG file in the data dir: one
// place to look, and nothing for RocksDB to write when the data disk is full (its file logger
// asserts on a write after a failed one).
class RocksToSpdlog final : public rocksdb::Logger {
 public:
  RocksToSpdlog() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char text[1024];
    int length = std::vsnprintf(text, sizeof text, format, ap);
    // RocksDB ends some lines with a newline of its own.
    for (size_t end = std::min<size_t>(length < 0 ? 0 : static_cast<size_t>(length), sizeof text - 1);
         end > 0 && text[end - 1] == '\n'; --end) {
      text[end - 1] = '\0';
    }
    spdlog::level::level_enum ours = level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? spdlog::level::err
                                     : level >= rocksdb::InfoLogLevel::WARN_LEVEL ? spdlog::level::warn
                                                                                  : spdlog::level::info;
    spdlog::log(ours, "rocksdb: {}", text);
  }
};

// Where a write to the broker family lands next to the previous one of its kind: a queue's
// messages arrive in sequence order (prefix: the queue), and a position key is overwritten
// again and again (prefix: the key itself). The memtable keeps an insert hint per prefix and
// skips the search from the top of its skip list, which was the largest cost of a busy
// store's commit thread.
//
// RocksDB 7.8 shares these hints between point keys and range deletions (fixed upstream in
// facebook/rocksdb#12558), and a range deletion handed another table's hint corrupts the
// memtable. So a key that begins a range deletion must stay out of the domain: the broker's
// range deletions begin at a queue's bare prefix (keys.h), never at a message key.
class QueueInsertHint final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "keyline.QueueInsertHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    if (IsSequenced(key)) return rocksdb::Slice(key.data(), key.size() - 8);
    return key;
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    if (key.empty()) return false;
    if (key[0] == keys::kMessage || key[0] == keys::kDeadLetter) return IsSequenced(key);
    return true;
  }

 private:
  // A whole message or dead-letter key: kind, peer, 0x00, stream, 0x00, 8-byte sequence. A
  // queue's bare prefix (kind, peer, 0x00, stream, 0x00) is not one.
  static bool IsSequenced(const rocksdb::Slice& key) {
    if (key.size() < 12 || (key[0] != keys::kMessage && key[0] != keys::kDeadLetter)) return false;
    std::string_view names(key.data() + 1, key.size() - 9);  // peer 0x00 stream 0x00
    size_t peer_end = names.find('\0');
    return peer_end != std::string_view::npos && peer_end + 1 < names.size() - 1 &&
           names.find('\0', peer_end + 1) == names.size() - 1;
  }
};

rocksdb::ColumnFamilyOptions BrokerFamilyOptions() {
  rocksdb::ColumnFamilyOptions options;
  options.memtable_insert_with_hint_prefix_extractor = std::make_shared<QueueInsertHint>();
  // Queues delete their head as acknowledgements arrive: compact files dense with tombstones
  // so that reading the head of a queue does not step over thousands of deleted keys.
  options.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/1024,
                                                     /*deletion_trigger=*/512,
                                                     /*deletion_ratio=*/0.5));
  return options;
}

}  // namespace

StatusOr<std::unique_ptr<Database>> Database::Open(const DatabaseOptions& options) {
  std::unique_ptr<Database> database(new Database());
  database->path_ = options.path;

  std::error_code ec;
  if (!options.secondary) {
    std::filesystem::create_directories(options.path, ec);
    if (ec) {
      return UnavailableError("data dir " + options.path.string() + " cannot be created: " +
                              ec.message());
    }
  }

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !options.secondary;
  db_options.create_missing_column_families = !options.secondary;
  db_options.max_background_jobs = 2;
  db_options.allow_fallocate = options.preallocate_files;
  db_options.info_log = std::make_shared<RocksToSpdlog>();
  // Keep the WAL bounded even when one column family is written much less than another.
  db_options.max_total_wal_size = 256ull << 20;
  if (options.secondary) db_options.max_open_files = -1;  // required for secondary instances

  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName,
                                    std::string(kBrokerColumnFamily)};
  for (const auto& name : options.column_families) {
    if (name != rocksdb::kDefaultColumnFamilyName && name != kBrokerColumnFamily) {
      names.push_back(name);
    }
  }
  if (options.secondary) {
    // A reader follows whatever families the primary has, including ones it does not know.
    std::vector<std::string> existing;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, options.path.string(),
                                                        &existing);
    if (!s.ok()) {
      return NotFoundError(options.path.string() + " is not a Keyline data dir: " + s.ToString());
    }
    names = existing;
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) {
    rocksdb::ColumnFamilyOptions family =
        name == kBrokerColumnFamily ? BrokerFamilyOptions() : rocksdb::ColumnFamilyOptions();
    if (std::find(options.uncompressed_column_families.begin(),
                  options.uncompressed_column_families.end(),
                  name) != options.uncompressed_column_families.end()) {
      family.compression = rocksdb::kNoCompression;
    }
    descriptors.emplace_back(name, family);
  }

  std::filesystem::path secondary_path = options.secondary_path;
  if (options.secondary && secondary_path.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "keyline-read-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return UnavailableError("cannot create a temporary directory for reading " +
                              options.path.string());
    }
    secondary_path = database->owned_secondary_dir_ = pattern;
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (options.secondary) {
    s = rocksdb::DB::OpenAsSecondary(db_options, options.path.string(),
                                     secondary_path.string(), descriptors,
                                     &database->handles_, &raw);
  } else {
    s = rocksdb::DB::Open(db_options, options.path.string(), descriptors, &database->handles_,
                          &raw);
  }
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return UnavailableError("data dir " + options.path.string() +
                              " is in use by another process (" + s.ToString() + ")");
    }
    return FromRocks(s, "opening data dir " + options.path.string());
  }
  database->db_.reset(raw);
  database->names_ = names;
  return database;
}

Database::~Database() {
  if (db_ != nullptr) {
    for (auto* handle : handles_) {
      rocksdb::Status s = db_->DestroyColumnFamilyHandle(handle);
      if (!s.ok()) spdlog::warn("closing {}: {}", path_.string(), s.ToString());
    }
    rocksdb::Status s = db_->Close();
    if (!s.ok()) spdlog::warn("closing {}: {}", path_.string(), s.ToString());
    db_.reset();
  }
  std::error_code ec;
  if (!owned_secondary_dir_.empty()) std::filesystem::remove_all(owned_secondary_dir_, ec);
}

rocksdb::ColumnFamilyHandle* Database::Family(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return handles_[i];
  }
  spdlog::critical("column family '{}' was not opened in {}", name, path_.string());
  std::abort();
}

bool Database::HasFamily(std::string_view name) const {
  for (const auto& existing : names_) {
    if (existing == name) return true;
  }
  return false;
}

Status Database::CatchUp() {
  return FromRocks(db_->TryCatchUpWithPrimary(), "following " + path_.string());
}

Status Database::Resume() { return FromRocks(db_->Resume(), "resuming " + path_.string()); }

}  // namespace keyline::broker
