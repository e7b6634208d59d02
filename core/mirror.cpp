#include "core/mirror.h"

#include "storage/files.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

namespace p2p {

namespace fs = std::filesystem;

namespace {

// Files up to this size are grouped; a group holds at most this many files or bytes.
constexpr uint64_t kSmallFile = 1024 * 1024;
constexpr size_t kGroupFiles = 1000;
constexpr size_t kGroupBytes = 16 * 1024 * 1024;

Status errno_status(const std::string& what, const std::string& path) {
  return io_error(what + " " + path + ": " + std::strerror(errno));
}

struct LocalFile {
  std::string host_path;
  bool is_link = false;
  bool executable = false;
  uint64_t size = 0;
  std::string link_target;
};

std::string join(const std::string& prefix, const std::string& rel) {
  return (prefix == "/" ? "" : prefix) + "/" + rel;
}

// Every regular file and symlink under `root`, keyed by drive path.
Result<std::map<std::string, LocalFile>> scan_folder(const std::string& root, const std::string& prefix,
                                                     const std::vector<std::string>& ignore) {
  std::map<std::string, LocalFile> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) return io_error("cannot read folder " + root + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return io_error("cannot read folder " + root + ": " + ec.message());
    const fs::path& p = it->path();
    std::string rel = p.lexically_relative(root).generic_string();  // never resolve links
    // The same normalisation the drive applies (a '\\' in a name is a separator there).
    auto drive_path_or = normalize_drive_path(join(prefix, rel));
    if (!drive_path_or.ok()) continue;
    std::string drive_path = *drive_path_or;
    if (ignored(drive_path, ignore)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    auto st = it->symlink_status(ec);
    if (ec) return io_error("cannot stat " + p.string() + ": " + ec.message());
    LocalFile f;
    f.host_path = p.string();
    if (fs::is_symlink(st)) {
      f.is_link = true;
      f.link_target = fs::read_symlink(p, ec).string();
    } else if (fs::is_regular_file(st)) {
      f.size = fs::file_size(p, ec);
      f.executable = (st.permissions() & fs::perms::owner_exec) != fs::perms::none;
    } else {
      continue;  // folders are implied by their files; sockets and devices are skipped
    }
    out[drive_path] = f;
  }
  return out;
}

// Whether the host file holds exactly the drive entry's bytes.
Result<bool> same_content(Drive& drive, const DriveEntry& e, const std::string& host_path) {
  int fd = ::open(host_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open", host_path);
  bool same = true;
  std::vector<uint8_t> buf;
  Status s = drive.read(e, [&](ByteView chunk) {
    buf.resize(chunk.size());
    size_t got = 0;
    while (got < chunk.size()) {
      ssize_t n = ::read(fd, buf.data() + got, chunk.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    same = got == chunk.size() && std::memcmp(buf.data(), chunk.data(), chunk.size()) == 0;
    return same;
  });
  ::close(fd);
  if (!s.ok()) return s;
  return same;
}

Result<bool> unchanged(Drive& drive, const DriveEntry& e, const LocalFile& f) {
  if (f.is_link) return e.linkname && *e.linkname == f.link_target;
  if (e.linkname || e.executable != f.executable || e.size() != f.size) return false;
  return same_content(drive, e, f.host_path);
}

}  // namespace

bool ignored(const std::string& drive_path, const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    if (p.empty()) continue;
    if (p.find('/') != std::string::npos) {
      std::string anchored = p[0] == '/' ? p : "/" + p;
      while (anchored.size() > 1 && anchored.back() == '/') anchored.pop_back();
      if (drive_path == anchored || drive_path.rfind(anchored + "/", 0) == 0) return true;
      if (::fnmatch(anchored.c_str(), drive_path.c_str(), FNM_PATHNAME) == 0) return true;
      continue;
    }
    size_t start = 1;
    while (start <= drive_path.size()) {
      size_t end = drive_path.find('/', start);
      std::string part = drive_path.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (::fnmatch(p.c_str(), part.c_str(), 0) == 0) return true;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return false;
}

// A big file written in one go goes to disk as it is written, and what is on
// disk leaves the page cache: a 1 GiB get neither waits for the kernel to find
// a GiB of fresh pages nor pushes everything else out of the cache.
class StreamingWriteback {
 public:
  static constexpr uint64_t kWindow = 8 << 20;
  static constexpr uint64_t kMinFile = 64 << 20;
  StreamingWriteback(int fd, uint64_t file_size) : fd_(fd), on_(file_size >= kMinFile) {}
  // `offset`: how much was written before this chunk.
  void wrote(uint64_t offset) {
    if (!on_ || offset < next_ + kWindow) return;
    // Start this window's writeback; wait for the one before and drop it.
    ::sync_file_range(fd_, static_cast<off_t>(next_), kWindow, SYNC_FILE_RANGE_WRITE);
    if (next_ >= kWindow) {
      off_t prev = static_cast<off_t>(next_ - kWindow);
      ::sync_file_range(fd_, prev, kWindow, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      ::posix_fadvise(fd_, prev, kWindow, POSIX_FADV_DONTNEED);
    }
    next_ += kWindow;
  }

 private:
  int fd_;
  bool on_;
  uint64_t next_ = 0;  // the start of the next window to hand to the kernel
};

Status put_file(Drive& drive, const std::string& host_path, const std::string& drive_path, const Progress& progress) {
  struct stat st;
  if (::lstat(host_path.c_str(), &st) != 0) return errno_status("cannot read", host_path);
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto target = fs::read_symlink(host_path, ec);
    if (ec) return io_error("cannot read link " + host_path + ": " + ec.message());
    return drive.symlink(drive_path, target.string());
  }
  int fd = ::open(host_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open", host_path);
  uint64_t moved = 0;
  Status s = drive.put(drive_path, [&](uint8_t* buf, size_t n) -> Result<size_t> {
    for (;;) {
      ssize_t r = ::read(fd, buf, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno_status("cannot read", host_path);
      moved += static_cast<uint64_t>(r);
      if (progress) progress(moved);
      return static_cast<size_t>(r);
    }
  }, (st.st_mode & S_IXUSR) != 0);
  ::close(fd);
  return s;
}

Status get_file(Drive& drive, const DriveEntry& entry, const std::string& host_path, const Progress& progress) {
  std::error_code ec;
  fs::path parent = fs::path(host_path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) return io_error("cannot create folder for " + host_path + ": " + ec.message());
  if (entry.linkname) {
    fs::remove(host_path, ec);
    fs::create_symlink(*entry.linkname, host_path, ec);
    if (ec) return io_error("cannot create link " + host_path + ": " + ec.message());
    return {};
  }
  // Write beside, then rename: a reader never sees half a file.
  std::string tmp = host_path + ".p2p-tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, entry.executable ? 0755 : 0644);
  if (fd < 0) return errno_status("cannot create", tmp);
  Status written;
  uint64_t moved = 0;
  StreamingWriteback writeback(fd, entry.size());
  Status s = drive.read(entry, [&](ByteView chunk) {
    moved += chunk.size();
    if (progress) progress(moved);
    writeback.wrote(moved - chunk.size());
    size_t done = 0;
    while (done < chunk.size()) {
      ssize_t n = ::write(fd, chunk.data() + done, chunk.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        written = errno_status("cannot write", tmp);
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  });
  if (::fchmod(fd, entry.executable ? 0755 : 0644) != 0 && written.ok()) written = errno_status("cannot chmod", tmp);
  ::close(fd);
  if (s.ok()) s = written;
  if (s.ok() && ::rename(tmp.c_str(), host_path.c_str()) != 0) s = errno_status("cannot replace", host_path);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

Result<MirrorTotals> mirror_to_drive(const std::string& folder, Drive& drive, const std::string& prefix,
                                     const MirrorOptions& o, const MirrorVisitor& visit) {
  auto local = scan_folder(folder, prefix, o.ignore);
  if (!local.ok()) return local.status();
  std::map<std::string, DriveEntry> remote;
  P2P_TRY(drive.list(prefix, [&](const DriveEntry& e) {
    remote[e.path] = e;
    return true;
  }));
  MirrorTotals t;
  // Small files are written in groups (one content commit and one db batch
  // per group); large ones stream on their own.
  std::vector<Drive::SmallFile> group;
  std::vector<MirrorChange> group_changes;
  size_t group_bytes = 0;
  auto flush = [&]() -> Status {
    if (group.empty()) return {};
    P2P_TRY(drive.put_many(group));
    for (const auto& c : group_changes) visit(c);
    group.clear();
    group_changes.clear();
    group_bytes = 0;
    return {};
  };
  for (const auto& [path, f] : *local) {
    auto it = remote.find(path);
    char op = '+';
    if (it != remote.end()) {
      auto same = unchanged(drive, it->second, f);
      if (!same.ok()) return same.status();
      if (*same) {
        t.unchanged++;
        continue;
      }
      op = '~';
    }
    (op == '+' ? t.added : t.changed)++;
    t.bytes += f.size;
    if (o.dry_run) {
      visit({op, path, f.size});
      continue;
    }
    if (f.is_link || f.size <= kSmallFile) {
      Drive::SmallFile sf{path, {}, f.executable, std::nullopt};
      if (f.is_link) {
        sf.linkname = f.link_target;
      } else {
        auto data = storage::read_file(f.host_path, kSmallFile);
        if (!data.ok()) return data.status();
        sf.data = std::move(*data);
      }
      group_bytes += sf.data.size();
      group.push_back(std::move(sf));
      group_changes.push_back({op, path, f.size});
      if (group.size() >= kGroupFiles || group_bytes >= kGroupBytes) P2P_TRY(flush());
      continue;
    }
    P2P_TRY(flush());
    P2P_TRY(put_file(drive, f.host_path, path));
    visit({op, path, f.size});
  }
  P2P_TRY(flush());
  if (o.prune) {
    for (const auto& [path, e] : remote) {
      if (local->count(path) || ignored(path, o.ignore)) continue;
      if (!o.dry_run) P2P_TRY(drive.del(path).status());
      t.removed++;
      visit({'-', path, e.size()});
    }
  }
  return t;
}

Result<MirrorTotals> mirror_to_folder(Drive& drive, const std::string& prefix, const std::string& folder,
                                      const MirrorOptions& o, const MirrorVisitor& visit, uint64_t at) {
  std::map<std::string, DriveEntry> remote;
  P2P_TRY(drive.list(prefix, [&](const DriveEntry& e) {
    if (!ignored(e.path, o.ignore)) remote[e.path] = e;
    return true;
  }, at));
  std::error_code ec;
  if (!o.dry_run) fs::create_directories(folder, ec);
  std::map<std::string, LocalFile> local;
  if (fs::exists(folder, ec)) {
    auto scanned = scan_folder(folder, prefix, o.ignore);
    if (!scanned.ok()) return scanned.status();
    local = std::move(*scanned);
  }
  const std::string base = prefix == "/" ? "" : prefix;
  MirrorTotals t;
  for (const auto& [path, e] : remote) {
    // Entries come from a drive that may be someone else's: never write outside `folder`.
    auto safe = normalize_drive_path(path);
    if (!safe.ok() || *safe != path || path.rfind(base + "/", 0) != 0)
      return corruption("the drive holds an unsafe path '" + path + "'; refusing to write it");
    std::string host = (fs::path(folder) / path.substr(base.size() + 1)).string();
    char op = '+';
    if (auto it = local.find(path); it != local.end()) {
      auto same = unchanged(drive, e, it->second);
      if (!same.ok()) return same.status();
      if (*same) {
        t.unchanged++;
        continue;
      }
      op = '~';
    }
    if (!o.dry_run) P2P_TRY(get_file(drive, e, host));
    (op == '+' ? t.added : t.changed)++;
    t.bytes += e.size();
    visit({op, path, e.size()});
  }
  if (o.prune) {
    for (const auto& [path, f] : local) {
      if (remote.count(path)) continue;
      if (!o.dry_run) fs::remove(f.host_path, ec);
      t.removed++;
      visit({'-', path, f.size});
    }
  }
  return t;
}

}  // namespace p2p
