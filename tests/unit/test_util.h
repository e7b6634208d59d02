// Helpers shared by unit tests: a fresh temporary folder per test.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace p2p::test {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "p2p-test-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace p2p::test
