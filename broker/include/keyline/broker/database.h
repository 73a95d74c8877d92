// A service's RocksDB: one database per service, column families per concern.
//
// Every service opens its data through this class so that the broker's own column family
// ("broker": outbox, inbox positions, link state) is configured the same way everywhere
// (compaction of acknowledged messages' tombstones), and so that RocksDB headers stay in
// the few .cc files that use the handles.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/common/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace keyline::broker {

// The column family that holds the broker's queues and positions.
inline constexpr std::string_view kBrokerColumnFamily = "broker";

struct DatabaseOptions {
  // Directory of the RocksDB database; created if missing. Required.
  std::filesystem::path path;
  // The service's own column families (besides "default" and "broker"). Default: none.
  std::vector<std::string> column_families;
  // Of those, the families whose values are random bytes (wrapped keys): stored uncompressed,
  // since compressing them only costs CPU. Default: none (all compressed).
  std::vector<std::string> uncompressed_column_families;
  // Open as a read-only secondary instance that follows a live primary (keyline-queue).
  // `secondary_path` is where the secondary keeps its own small state; empty: a temporary
  // directory that is removed when the Database closes. Default: primary.
  bool secondary = false;
  std::filesystem::path secondary_path;
  // Preallocate WAL and table files (fallocate). Default true: on a disk it saves metadata
  // updates on every sync. On tmpfs it only zeroes memory up front: pass false there.
  bool preallocate_files = true;
};

class Database {
 public:
  // Opens (or creates) the database. A locked database (another process owns it), a
  // corrupt one, or an unwritable directory is an error naming the path.
  static StatusOr<std::unique_ptr<Database>> Open(const DatabaseOptions& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  rocksdb::DB* db() const { return db_.get(); }
  // The handle of a column family named at Open ("default" and "broker" always exist).
  // Precondition: the name was opened; anything else is a programming error (aborts).
  rocksdb::ColumnFamilyHandle* Family(std::string_view name) const;
  rocksdb::ColumnFamilyHandle* broker_family() const { return Family(kBrokerColumnFamily); }
  bool HasFamily(std::string_view name) const;
  const std::filesystem::path& path() const { return path_; }

  // Secondary instances only: catch up with the primary's latest writes.
  [[nodiscard]] Status CatchUp();
  // After a failed write (disk full): ask RocksDB to clear its error state once space returns.
  [[nodiscard]] Status Resume();

 private:
  Database() = default;
  std::filesystem::path path_;
  std::filesystem::path owned_secondary_dir_;  // removed on close
  std::vector<std::string> names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace keyline::broker
