#include "tests/support/fs_support.h"

#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "formats/registry.h"
#include "tests/support/test_support.h"

namespace vdisk::test {

std::unique_ptr<FileTree> open_tree(const std::string& image) {
  BlockDevicePtr dev = open_image(image, "", OpenOptions{});
  auto tree = open_file_tree(dev, image);
  if (!tree) FAIL("no file system found in " << image);
  return tree;
}

std::vector<uint8_t> read_whole(const FileTree& tree, NodeId file) {
  uint64_t size = tree.stat(file).size;
  std::vector<uint8_t> out(size);
  uint64_t pos = 0;
  // 300007 bytes: not a multiple of any block or cluster size.
  while (pos < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(300007, size - pos));
    size_t got = tree.read(file, pos, out.data() + pos, want);
    REQUIRE(got == want);
    pos += got;
  }
  uint8_t extra;
  CHECK(tree.read(file, size, &extra, 1) == 0);
  return out;
}

size_t compare_with_host(const FileTree& tree, NodeId node, const std::string& dir,
                         const TreeCompare& how, const std::string& where) {
  namespace fs = std::filesystem;
  std::map<std::string, DirEntry> mine;
  for (DirEntry& e : tree.list(node)) {
    INFO(where << "/" << e.name);
    if (where.empty() && std::find(how.extra_top_level.begin(), how.extra_top_level.end(),
                                   e.name) != how.extra_top_level.end()) {
      continue;
    }
    CHECK(mine.count(e.name) == 0);
    mine.emplace(e.name, std::move(e));
  }
  std::map<std::string, fs::path> host;
  for (const auto& e : fs::directory_iterator(dir))
    host.emplace(e.path().filename().string(), e.path());
  std::vector<std::string> mine_names, host_names;
  for (auto& [n, _] : mine) mine_names.push_back(n);
  for (auto& [n, _] : host) host_names.push_back(n);
  INFO("directory " << (where.empty() ? "/" : where));
  CHECK(mine_names == host_names);
  size_t count = 0;
  for (auto& [name, path] : host) {
    auto it = mine.find(name);
    if (it == mine.end()) continue;
    const NodeStat& st = it->second.stat;
    std::string rel = where + "/" + name;
    INFO("entry " << rel);
    struct stat hs {};
    REQUIRE(lstat(path.c_str(), &hs) == 0);
    CHECK(tree.stat(st.id).type == st.type);
    if (how.modes) CHECK((st.mode & 07777) == (hs.st_mode & 07777));
    if (how.owners) {
      CHECK(st.uid == hs.st_uid);
      CHECK(st.gid == hs.st_gid);
    }
    if (how.mtimes && !S_ISLNK(hs.st_mode)) CHECK(st.mtime.seconds == hs.st_mtim.tv_sec);
    ++count;
    if (S_ISDIR(hs.st_mode)) {
      REQUIRE(st.type == NodeType::kDirectory);
      count += compare_with_host(tree, st.id, path.string(), how, rel);
    } else if (S_ISLNK(hs.st_mode)) {
      REQUIRE(st.type == NodeType::kSymlink);
      std::string target = fs::read_symlink(path).string();
      CHECK(tree.readlink(st.id) == target);
      CHECK(st.size == target.size());
    } else if (S_ISREG(hs.st_mode)) {
      REQUIRE(st.type == NodeType::kRegular);
      CHECK(st.size == static_cast<uint64_t>(hs.st_size));
      CHECK((read_whole(tree, st.id) == read_file(path.string())));
    } else if (S_ISFIFO(hs.st_mode)) {
      CHECK(st.type == NodeType::kFifo);
    }
  }
  return count;
}

void write_random_file(const std::string& path, size_t len, uint32_t seed) {
  write_file(path, pattern_bytes(len, seed));
}

}  // namespace vdisk::test
