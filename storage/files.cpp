#include "storage/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace p2p::storage {

namespace {

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// Writes `contents` to a fresh temporary next to `path`; returns its name.
Result<std::string> write_temp(const std::string& path, ByteView contents) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error(errno_text("cannot create", tmp));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = io_error(errno_text("cannot write", tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return io_error(errno_text("cannot sync", tmp));
  }
  return tmp;
}

}  // namespace

std::string default_home() {
  if (const char* home = std::getenv("P2P_HOME"); home && *home) return home;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/p2p";
  const char* user_home = std::getenv("HOME");
  return std::string(user_home && *user_home ? user_home : ".") + "/.local/share/p2p";
}

Status ensure_dir(const std::string& dir) {
  if (dir.empty()) return invalid_argument("empty folder name");
  for (size_t pos = 1; pos <= dir.size(); pos++) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return io_error(errno_text("cannot create folder", part));
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return io_error(dir + " is not a folder");
  return {};
}

Result<Bytes> read_file(const std::string& path, size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path + " does not exist");
    return io_error(errno_text("cannot open", path));
  }
  Bytes out;
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = io_error(errno_text("cannot read", path));
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_size) {
      ::close(fd);
      return corruption(path + " is larger than expected (" + std::to_string(max_size) + " bytes at most)");
    }
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

Result<bool> create_file_exclusive(const std::string& path, ByteView contents) {
  auto tmp = write_temp(path, contents);
  if (!tmp.ok()) return tmp.status();
  // link() refuses to replace an existing file, so two racing processes agree on one winner.
  int rc = ::link(tmp->c_str(), path.c_str());
  int saved = errno;
  ::unlink(tmp->c_str());
  if (rc == 0) return true;
  if (saved == EEXIST) return false;
  errno = saved;
  return io_error(errno_text("cannot create", path));
}

Status replace_file(const std::string& path, ByteView contents) {
  auto tmp = write_temp(path, contents);
  if (!tmp.ok()) return tmp.status();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    Status s = io_error(errno_text("cannot replace", path));
    ::unlink(tmp->c_str());
    return s;
  }
  return {};
}

}  // namespace p2p::storage
