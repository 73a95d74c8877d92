#include "durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace keyline::ecu_sim {
namespace {

std::string Errno() { return std::strerror(errno); }

Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::filesystem::path& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return InternalError(path.string() + ": write failed: " + Errno());
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<AppendOnlyFile> AppendOnlyFile::Rewrite(const std::filesystem::path& path,
                                                 std::span<const uint8_t> contents) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return InternalError(tmp.string() + ": cannot create: " + Errno());
  Status written = WriteAll(out, contents, tmp);
  if (written.ok() && ::fsync(out) != 0) written = InternalError(tmp.string() + ": fsync: " + Errno());
  ::close(out);
  RETURN_IF_ERROR(written);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return InternalError(path.string() + ": rename failed: " + Errno());
  }
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return InternalError(path.string() + ": cannot open: " + Errno());
  return AppendOnlyFile(path, fd);
}

AppendOnlyFile::AppendOnlyFile(AppendOnlyFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

AppendOnlyFile& AppendOnlyFile::operator=(AppendOnlyFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

AppendOnlyFile::~AppendOnlyFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status AppendOnlyFile::Append(std::span<const uint8_t> bytes) {
  struct stat before {};
  if (::fstat(fd_, &before) != 0) return InternalError(path_.string() + ": fstat: " + Errno());
  Status written = WriteAll(fd_, bytes, path_);
  if (written.ok() && ::fdatasync(fd_) != 0) {
    written = InternalError(path_.string() + ": fdatasync: " + Errno());
  }
  if (!written.ok() && ::ftruncate(fd_, before.st_size) != 0) {
    return InternalError(written.message() + "; cutting off the partial record failed too: " + Errno());
  }
  return written;
}

}  // namespace keyline::ecu_sim
