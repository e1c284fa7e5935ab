// NTFS read as file trees. Volumes are made by mkntfs (ntfs-3g's tools) at
// every sector and cluster size; files go in with ntfscp (no FUSE needed) or
// through the ntfs-3g FUSE driver, whose mount is then the oracle for names,
// types, sizes, contents, link targets and times. ntfsinfo and ntfsls say
// where things are and which MFT entries exist.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/ntfs/ntfs_lznt1.h"
#include "formats/ntfs/ntfs_tree.h"
#include "formats/registry.h"
#include "tests/support/fs_support.h"
#include "tests/support/mount_support.h"
#include "tests/support/test_support.h"

using namespace vdisk;
using namespace vdisk::test;

namespace {

void mkntfs(const std::string& img, const std::string& size, const std::string& opts) {
  require_tool("mkntfs");
  run_ok("truncate -s " + size + " " + sh_quote(img));
  run_ok("mkntfs -F -q -f " + opts + " " + sh_quote(img) + " >/dev/null 2>&1");
}

void ntfscp(const std::string& img, const std::string& src, const std::string& dest) {
  require_tool("ntfscp");
  run_ok("ntfscp -f " + sh_quote(img) + " " + sh_quote(src) + " " + sh_quote(dest) +
         " >/dev/null 2>&1");
}

// "Key: value" from ntfsinfo output.
uint64_t ntfsinfo_number(const std::string& out, const std::string& key) {
  size_t p = out.find(key);
  REQUIRE(p != std::string::npos);
  p = out.find_first_of("0123456789", p + key.size());
  return std::stoull(out.substr(p));
}

// The MFT entry number of `path` (ntfsinfo -F).
uint64_t inode_of(const std::string& img, const std::string& path) {
  std::string out = run_ok("ntfsinfo -F " + sh_quote(path) + " " + sh_quote(img) + " 2>/dev/null");
  return ntfsinfo_number(out, "Dumping Inode");
}

// Device offset of MFT entry `n` on a fresh volume, whose MFT is one run
// (ntfsinfo -m names its first cluster and the record size).
uint64_t record_offset(const std::string& img, uint64_t n) {
  std::string out = run_ok("ntfsinfo -m " + sh_quote(img) + " 2>/dev/null");
  uint64_t lcn = ntfsinfo_number(out, "LCN of Data Attribute for FILE_MFT");
  uint64_t cluster = ntfsinfo_number(out, "Cluster Size");
  uint64_t rsize = ntfsinfo_number(out, "MFT Record Size");
  return lcn * cluster + n * rsize;
}

// Device offset of MFT entry `n`'s copy in $MFTMirr (boot sector field 56).
uint64_t mirror_offset(const std::string& img, uint64_t n) {
  std::vector<uint8_t> bs = read_file(img);
  std::string out = run_ok("ntfsinfo -m " + sh_quote(img) + " 2>/dev/null");
  uint64_t cluster = ntfsinfo_number(out, "Cluster Size");
  uint64_t rsize = ntfsinfo_number(out, "MFT Record Size");
  REQUIRE(ntfsinfo_number(out, "LCN of Data Attribute for File_MFTMirr") ==
          load_le64(bs.data() + 56));
  return load_le64(bs.data() + 56) * cluster + n * rsize;
}

// Device offset of the FILE record numbered `n` (the 3.1 header keeps its
// own number at byte 44), found by scanning 1 KiB-aligned positions.
uint64_t find_record(const std::vector<uint8_t>& img, uint64_t n) {
  for (uint64_t off = 0; off + 1024 <= img.size(); off += 1024) {
    if (std::memcmp(img.data() + off, "FILE", 4) == 0 && load_le32(img.data() + off + 44) == n &&
        (load_le16(img.data() + off + 22) & 1)) {
      return off;
    }
  }
  FAIL("no FILE record " << n);
  return 0;
}

// Offset (inside the record) of the first attribute of `type` in the MFT
// entry at `rec`, walking the headers by hand (FILE record layout).
size_t find_attr(const std::vector<uint8_t>& img, uint64_t rec, uint32_t type) {
  size_t pos = load_le16(img.data() + rec + 20);
  while (pos < 4096) {
    uint32_t t = load_le32(img.data() + rec + pos);
    if (t == type) return pos;
    if (t == 0xFFFFFFFF) break;
    pos += load_le32(img.data() + rec + pos + 4);
  }
  FAIL("no attribute " << type << " in the record at " << rec);
  return 0;
}

std::set<std::string> lines(const std::string& s) {
  std::set<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.insert(l);
  return out;
}

std::string sha256(const std::string& cmd) {
  return run_ok(cmd + " | sha256sum");
}

}  // namespace

TEST_CASE("ntfs: mkntfs volumes at every sector and cluster size read what ntfscp put in",
          "[ntfs]") {
  TempDir dir;
  std::string src = dir / "medium.bin";
  write_random_file(src, 300001, 41);
  std::string small = dir / "small.txt";
  write_file(small, {'h', 'e', 'l', 'l', 'o', '\n'});
  struct Config {
    std::string opts, size;
  };
  const Config configs[] = {
      {"-s 512 -c 512", "24M"},    {"-s 512 -c 1024", "24M"},  {"-s 512 -c 4096", "24M"},
      {"-s 4096 -c 4096", "24M"},  {"-s 512 -c 65536", "48M"}, {"-s 4096 -c 65536", "48M"},
      {"-s 512 -c 2097152", "1G"},
  };
  for (const Config& c : configs) {
    INFO("mkntfs " << c.opts);
    std::string img = dir / "v.img";
    std::filesystem::remove(img);
    mkntfs(img, c.size, c.opts + " -L cfg");
    ntfscp(img, src, "/medium.bin");
    ntfscp(img, small, "/small.txt");
    auto tree = open_tree(img);
    const Json info = tree->info();
    CHECK(info.find("filesystem")->as_string() == "ntfs");
    CHECK(info.find("volume_name")->as_string() == "cfg");
    CHECK(info.find("state")->as_string() == "clean");
    // ntfsls is the second oracle for the root's names.
    std::set<std::string> theirs = lines(run_ok("ntfsls " + sh_quote(img) + " 2>/dev/null"));
    std::set<std::string> mine;
    for (const DirEntry& e : tree->list(tree->root())) mine.insert(e.name);
    CHECK(mine == theirs);
    CHECK(read_whole(*tree, resolve_tree_path(*tree, "/medium.bin", img)) == read_file(src));
    CHECK(sha256(std::string(VDISK_BIN) + " cat " + sh_quote(img) + " /small.txt") ==
          sha256("cat " + sh_quote(small)));
    // System files are hidden, yet reachable by name and listed with -a.
    CHECK(mine.count("$MFT") == 0);
    bool found = false;
    for (const DirEntry& e : tree->list_system(tree->root())) found |= e.name == "$MFT";
    CHECK(found);
    CHECK_THAT(run_ok(std::string(VDISK_BIN) + " ls -a " + sh_quote(img)),
               Catch::Contains("$Extend"));
    CHECK(tree->stat(resolve_tree_path(*tree, "/$Extend", img)).type == NodeType::kDirectory);
  }
}

TEST_CASE("ntfs: a volume filled through the ntfs-3g FUSE driver reads like its mount",
          "[ntfs][fuse]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ntfs-3g");
  require_tool("setfattr");
  TempDir dir;
  std::string img = dir / "v.img", mnt = dir / "mnt";
  mkntfs(img, "96M", "-s 512 -c 4096 -L filled");
  std::filesystem::create_directory(mnt);
  run_ok("ntfs-3g -o streams_interface=windows " + sh_quote(img) + " " + sh_quote(mnt));
  std::string m = sh_quote(mnt);
  // A varied tree: deep paths, Unicode, hard links, Interix symlinks and a
  // FIFO (what ntfs-3g writes for them), a sparse file, LZNT1-compressed
  // files, a directory of 3000 entries (a B-tree with $INDEX_ALLOCATION),
  // alternate data streams, and the hidden DOS attribute.
  RunResult fill = run(
      "set -e; cd " + m +
      " && mkdir -p deep/a/b/c/d && echo bottom > deep/a/b/c/d/bottom.txt"
      " && echo hello > hello.txt && : > empty && mkdir 'café' && echo crème > 'café/brûlée.txt'"
      " && echo 東京 > '日本語.txt' && ln hello.txt deep/hard_link && ln -s hello.txt link"
      " && ln -s ../../hello.txt deep/a/up_link && mkfifo pipe"
      " && truncate -s 20M sparse.bin && printf middle | dd of=sparse.bin bs=1 seek=9000000 "
      "conv=notrunc status=none"
      " && mkdir comp && setfattr -h -v 0x00000800 -n system.ntfs_attrib_be comp"
      " && yes 'a compressible line of text' | head -c 300000 > comp/text.txt"
      " && head -c 100000 /dev/urandom > comp/random.bin"
      " && mkdir big && cd big && for i in $(seq 1 3000); do echo $i > entry_$i; done && cd .."
      " && echo stream-data > hello.txt:extra && echo zone > 'café/brûlée.txt:Zone.Identifier'"
      " && echo secret > hidden.txt && setfattr -h -v 0x00000002 -n system.ntfs_attrib_be "
      "hidden.txt");
  INFO(fill.err);
  REQUIRE(fill.exit_code == 0);
  write_random_file(dir / "medium.bin", 700001, 42);
  run_ok("cp " + sh_quote(dir / "medium.bin") + " " + m + "/medium.bin");
  run_ok("umount " + m);
  run_ok("ntfs-3g -o ro,streams_interface=windows " + sh_quote(img) + " " + m);
  struct Unmount {
    std::string m;
    ~Unmount() { run("umount " + m); }
  } unmount{m};

  auto tree = open_tree(img);
  // Names, types, sizes, contents, link targets and mtimes against the mount.
  CHECK(compare_with_host(*tree, tree->root(), mnt, TreeCompare{false, false, true, {}}) > 3000);
  // Full FILETIME precision: nanoseconds as the ntfs-3g mount shows them.
  for (const char* p : {"/hello.txt", "/deep/a/b/c/d/bottom.txt", "/comp/text.txt"}) {
    INFO(p);
    struct stat hs {};
    REQUIRE(lstat((mnt + p).c_str(), &hs) == 0);
    NodeStat st = tree->stat(resolve_tree_path(*tree, p, img));
    CHECK(st.mtime.seconds == hs.st_mtim.tv_sec);
    CHECK(st.mtime.nanoseconds == hs.st_mtim.tv_nsec);
    CHECK(st.atime.nanoseconds == hs.st_atim.tv_nsec);
    CHECK(st.ctime.nanoseconds == hs.st_ctim.tv_nsec);
  }
  // Hard links: one entry, two names.
  NodeId h1 = resolve_tree_path(*tree, "/hello.txt", img);
  NodeId h2 = resolve_tree_path(*tree, "/deep/hard_link", img);
  CHECK(h1 == h2);
  CHECK(tree->stat(h1).nlink == 2);
  // Sparse: the hole is reported as one, and reads as zeros.
  NodeId sp = resolve_tree_path(*tree, "/sparse.bin", img);
  Extent first = tree->file_extent(sp, 0);
  CHECK(first.type == ExtentType::kZero);
  CHECK(first.length >= 8u << 20);
  // Streams: listed, readable by "file:stream", as the mount reads them.
  auto streams = tree->streams(h1);
  REQUIRE(streams.size() == 1);
  CHECK(streams[0].name == "extra");
  CHECK(sha256(std::string(VDISK_BIN) + " cat " + sh_quote(img) + " /hello.txt:extra") ==
        sha256("cat " + m + "/hello.txt:extra"));
  CHECK_THAT(run_ok(std::string(VDISK_BIN) + " ls -l " + sh_quote(img)),
             Catch::Contains("hello.txt:extra"));
  // The CLI: ls -R against find on the mount.
  std::set<std::string> mine = lines(run_ok(std::string(VDISK_BIN) + " ls -R " + sh_quote(img)));
  std::set<std::string> theirs =
      lines(run_ok("cd " + m + " && find . -mindepth 1 | sed 's|^\\./||'"));
  CHECK(mine == theirs);
  // extract against the mount (diff -r compares contents and link targets),
  // keeping holes and times; --streams adds FILE:STREAM files.
  std::string out = dir / "out";
  RunResult x = run_vdisk("extract -q --streams " + sh_quote(img) + " -C " + sh_quote(out));
  INFO(x.err);
  REQUIRE(x.exit_code == 0);
  run_ok("diff -r --no-dereference -x '*:*' -x pipe " + m + " " + sh_quote(out));
  CHECK(read_file(out + "/hello.txt:extra") == read_file(mnt + "/hello.txt:extra"));
  CHECK(read_file(out + "/café/brûlée.txt:Zone.Identifier") ==
        read_file(mnt + "/café/brûlée.txt:Zone.Identifier"));
  CHECK(allocated_bytes_on_host(out + "/sparse.bin") < (1u << 20));
  struct stat os {
  }, ms{};
  REQUIRE(lstat((out + "/medium.bin").c_str(), &os) == 0);
  REQUIRE(lstat((mnt + "/medium.bin").c_str(), &ms) == 0);
  CHECK(os.st_mtim.tv_sec == ms.st_mtim.tv_sec);
  CHECK(os.st_mtim.tv_nsec == ms.st_mtim.tv_nsec);
  // Without --streams no stream files.
  std::string out2 = dir / "out2";
  REQUIRE(run_vdisk("extract -q " + sh_quote(img) + " /deep -C " + sh_quote(out2)).exit_code == 0);
  CHECK(run_ok("find " + sh_quote(out2) + " -name '*:*'").empty());
  // JSON: FILETIMEs to 100 ns, DOS attributes.
  std::string js =
      run_ok(std::string(VDISK_BIN) + " ls -l --output json " + sh_quote(img) + " /hidden.txt");
  CHECK_THAT(js, Catch::Contains("\"hidden\""));
  CHECK_THAT(js, Catch::Contains("creation_time"));
  CHECK_THAT(js, Catch::Matches("(.|\\n)*T[0-9:]{8}\\.[0-9]{7}Z(.|\\n)*"));
  // The mount shows the hidden file too (ntfs-3g default), and so do we.
  CHECK(file_exists(mnt + "/hidden.txt"));
}

TEST_CASE("ntfs: a heavily fragmented file spread over several MFT entries", "[ntfs][fuse]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ntfs-3g");
  TempDir dir;
  std::string img = dir / "v.img", mnt = dir / "mnt";
  mkntfs(img, "24M", "-s 512 -c 4096");
  std::filesystem::create_directory(mnt);
  run_ok("ntfs-3g " + sh_quote(img) + " " + sh_quote(mnt));
  // Fill the volume with one-cluster files, free every other one, then grow
  // a file into the holes: hundreds of runs, more than one entry holds.
  std::vector<uint8_t> blk = pattern_bytes(4096, 47);
  int n = 0;
  for (;; ++n) {
    std::string p = mnt + "/f" + std::to_string(n);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) break;
    bool ok = ::write(fd, blk.data(), blk.size()) == 4096;
    ::close(fd);
    if (!ok) break;
  }
  REQUIRE(n > 1000);
  for (int i = 0; i < n; i += 2) ::unlink((mnt + "/f" + std::to_string(i)).c_str());
  std::vector<uint8_t> want;
  {
    int fd = ::open((mnt + "/frag.bin").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    REQUIRE(fd >= 0);
    for (int i = 0; i < n / 2 - 64; ++i) {
      blk[0] = static_cast<uint8_t>(i);
      blk[1] = static_cast<uint8_t>(i >> 8);
      REQUIRE(::write(fd, blk.data(), blk.size()) == 4096);
      want.insert(want.end(), blk.begin(), blk.end());
    }
    ::close(fd);
  }
  run_ok("umount " + sh_quote(mnt));
  // The oracle says the file has an attribute list.
  std::string info = run_ok("ntfsinfo -F /frag.bin " + sh_quote(img) + " 2>/dev/null");
  REQUIRE(info.find("$ATTRIBUTE_LIST") != std::string::npos);
  auto tree = open_tree(img);
  NodeId f = resolve_tree_path(*tree, "/frag.bin", img);
  CHECK(tree->stat(f).size == want.size());
  CHECK(read_whole(*tree, f) == want);
  CHECK(sha256(std::string(VDISK_BIN) + " cat " + sh_quote(img) + " /frag.bin") ==
        sha256("ntfscat " + sh_quote(img) + " /frag.bin 2>/dev/null"));
  // Hostile: an attribute list that lists itself is refused for that file
  // alone.
  auto b = read_file(img);
  uint64_t rec = find_record(b, inode_of(img, "/frag.bin"));
  size_t al = find_attr(b, rec, 0x20);
  size_t v;
  if (b[rec + al + 8] == 0) {
    v = rec + al + load_le16(b.data() + rec + al + 20);
  } else {
    // Non-resident (ntfs-3g's choice): the first data run's cluster.
    const uint8_t* run = b.data() + rec + al + load_le16(b.data() + rec + al + 32);
    unsigned len_size = run[0] & 15, off_size = run[0] >> 4;
    uint64_t lcn = 0;
    for (unsigned k = 0; k < off_size; ++k) lcn |= uint64_t{run[1 + len_size + k]} << (8 * k);
    v = lcn * 4096;
  }
  b[v] = 0x20;  // the first entry's type: $ATTRIBUTE_LIST
  std::string bad = dir / "bad.img";
  write_file(bad, b);
  RunResult r = run_vdisk("cat " + sh_quote(bad) + " /frag.bin");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("lists itself"));
  CHECK(run_vdisk("ls " + sh_quote(bad)).exit_code == 0);
}

TEST_CASE("ntfs: reparse-point symlinks, junctions, WOF and EFS files", "[ntfs][fuse]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("ntfs-3g");
  require_tool("setfattr");
  TempDir dir;
  std::string img = dir / "v.img", mnt = dir / "mnt";
  mkntfs(img, "16M", "-s 512 -c 4096");
  std::filesystem::create_directory(mnt);
  run_ok("ntfs-3g " + sh_quote(img) + " " + sh_quote(mnt));
  // Reparse buffers as Windows writes them ([MS-FSCC] 2.1.2.4 and 2.1.2.5),
  // handed to ntfs-3g through its system.ntfs_reparse_data attribute.
  auto utf16 = [](const std::string& s) {
    std::vector<uint8_t> b;
    for (char c : s) b.insert(b.end(), {static_cast<uint8_t>(c), 0});
    return b;
  };
  auto reparse = [&](uint32_t tag, const std::string& subst, const std::string& print,
                     bool relative) {
    std::vector<uint8_t> s = utf16(subst), p = utf16(print), body;
    auto u16 = [&](size_t v) { body.insert(body.end(), {uint8_t(v), uint8_t(v >> 8)}); };
    u16(0);
    u16(s.size());
    bool symlink = tag == 0xA000000C;
    u16(s.size() + (symlink ? 0 : 2));
    u16(p.size());
    if (symlink) body.insert(body.end(), {uint8_t(relative ? 1 : 0), 0, 0, 0});
    body.insert(body.end(), s.begin(), s.end());
    if (!symlink) body.insert(body.end(), {0, 0});
    body.insert(body.end(), p.begin(), p.end());
    if (!symlink) body.insert(body.end(), {0, 0});
    std::vector<uint8_t> rp = {uint8_t(tag),
                               uint8_t(tag >> 8),
                               uint8_t(tag >> 16),
                               uint8_t(tag >> 24),
                               uint8_t(body.size()),
                               uint8_t(body.size() >> 8),
                               0,
                               0};
    rp.insert(rp.end(), body.begin(), body.end());
    return rp;
  };
  auto hexs = [](const std::vector<uint8_t>& b) {
    std::string h = "0x";
    char buf[3];
    for (uint8_t c : b) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      h += buf;
    }
    return h;
  };
  std::string m = sh_quote(mnt);
  run_ok("mkdir -p " + m + "/dir/sub && echo t > " + m + "/dir/sub/t.txt && : > " + m +
         "/rel && mkdir " + m + "/junction && : > " + m + "/abs && : > " + m + "/wof");
  run_ok("setfattr -h -n system.ntfs_reparse_data -v " +
         hexs(reparse(0xA000000C, "dir\\sub\\t.txt", "dir\\sub\\t.txt", true)) + " " + m + "/rel");
  run_ok("setfattr -h -n system.ntfs_reparse_data -v " +
         hexs(reparse(0xA0000003, "\\??\\C:\\dir\\sub", "C:\\dir\\sub", false)) + " " + m +
         "/junction");
  run_ok("setfattr -h -n system.ntfs_reparse_data -v " +
         hexs(reparse(0xA000000C, "\\??\\C:\\dir", "C:\\dir", false)) + " " + m + "/abs");
  // WOF with LZX (algorithm 1): WOF_EXTERNAL_INFO {1, 2}, FILE_PROVIDER {1, 1}.
  std::vector<uint8_t> wof = {0x17, 0, 0, 0x80, 16, 0, 0, 0, 1, 0, 0, 0,
                              2,    0, 0, 0,    1,  0, 0, 0, 1, 0, 0, 0};
  run_ok("setfattr -h -n system.ntfs_reparse_data -v " + hexs(wof) + " " + m + "/wof");
  run_ok("umount " + m);
  auto tree = open_tree(img);
  NodeId rel = resolve_tree_path(*tree, "/rel", img);
  CHECK(tree->stat(rel).type == NodeType::kSymlink);
  CHECK(tree->readlink(rel) == "dir/sub/t.txt");
  // A junction to C:\dir\sub is this volume's /dir/sub: inside the tree.
  NodeId j = resolve_tree_path(*tree, "/junction", img);
  CHECK(tree->stat(j).type == NodeType::kSymlink);
  CHECK(tree->readlink(j) == "/dir/sub");
  CHECK(tree->readlink(resolve_tree_path(*tree, "/abs", img)) == "/dir");
  // cat follows links inside the tree only.
  CHECK(run_ok(std::string(VDISK_BIN) + " cat " + sh_quote(img) + " /rel") == "t\n");
  // Extracted links stay links; nothing is written through them.
  std::string out = dir / "out";
  REQUIRE(run_vdisk("extract -q " + sh_quote(img) + " -C " + sh_quote(out)).exit_code == 0);
  CHECK(std::filesystem::read_symlink(out + "/junction").string() == "/dir/sub");
  // WOF: listed, refused on read by name. Its unnamed $DATA is empty here,
  // so read through the library at offset 0 of a 1-byte request.
  NodeId w = resolve_tree_path(*tree, "/wof", img);
  CHECK(tree->stat(w).type == NodeType::kRegular);
  uint8_t b[1];
  CHECK_THROWS_WITH(tree->read(w, 0, b, 1), Catch::Contains("compressed with LZX"));
}

TEST_CASE("ntfs inside MBR and GPT partitions of VHDX and VMDK images made by qemu-img",
          "[ntfs][partition]") {
  require_tool("sfdisk");
  require_tool("qemu-img");
  TempDir dir;
  std::string vol = dir / "vol.img", disk = dir / "disk.raw";
  mkntfs(vol, "20M", "-s 512 -c 4096 -L part");
  write_random_file(dir / "medium.bin", 300001, 43);
  ntfscp(vol, dir / "medium.bin", "/medium.bin");
  const std::string want = sha256("cat " + sh_quote(dir / "medium.bin"));
  for (const std::string& label : {"dos", "gpt"}) {
    INFO(label);
    std::filesystem::remove(disk);
    run_ok("truncate -s 48M " + sh_quote(disk));
    // MBR type 0x07 / GPT basic data (EBD0A0A2-...).
    std::string type = label == "dos" ? "7" : "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
    run_ok(
        "printf 'label: " + label + "\\nstart=2048, size=8192, type=" +
        (label == "dos" ? std::string("83") : std::string("0FC63DAF-8483-4772-8E79-3D69D8477DE4")) +
        "\\nstart=10240, size=40960, type=" + type + "\\n' | sfdisk -q " + sh_quote(disk));
    run_ok("dd if=" + sh_quote(vol) + " of=" + sh_quote(disk) +
           " bs=512 seek=10240 conv=notrunc,sparse status=none");
    for (const std::string& fmt : {"vhdx", "vmdk"}) {
      INFO(fmt);
      std::string image = dir / ("disk." + fmt);
      std::filesystem::remove(image);
      run_ok("qemu-img convert -f raw -O " + fmt + " " + sh_quote(disk) + " " + sh_quote(image));
      CHECK_THAT(run_ok(std::string(VDISK_BIN) + " ls " + sh_quote(image + "@p2")),
                 Catch::Contains("medium.bin"));
      CHECK(sha256(std::string(VDISK_BIN) + " cat " + sh_quote(image + "@p2:/medium.bin")) == want);
    }
  }
}

TEST_CASE("vdisk mount --mode tree shows an NTFS partition of a VHDX as p1/", "[ntfs][fuse]") {
  VDISK_REQUIRE_FUSE_OR_SKIP();
  require_tool("sfdisk");
  require_tool("qemu-img");
  TempDir dir;
  std::string vol = dir / "vol.img", disk = dir / "disk.raw", vhdx = dir / "disk.vhdx";
  mkntfs(vol, "20M", "-s 512 -c 4096");
  write_random_file(dir / "medium.bin", 300001, 48);
  ntfscp(vol, dir / "medium.bin", "/medium.bin");
  run_ok("truncate -s 32M " + sh_quote(disk));
  run_ok(
      "printf 'label: gpt\\nstart=2048, size=40960, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\\n' "
      "| sfdisk -q " +
      sh_quote(disk));
  run_ok("dd if=" + sh_quote(vol) + " of=" + sh_quote(disk) +
         " bs=512 seek=2048 conv=notrunc,sparse status=none");
  run_ok("qemu-img convert -f raw -O vhdx " + sh_quote(disk) + " " + sh_quote(vhdx));
  std::string mp = dir / "mnt";
  std::filesystem::create_directory(mp);
  run_ok(std::string(VDISK_BIN) + " mount --mode tree " + sh_quote(vhdx) + " " + sh_quote(mp));
  struct Unmount {
    std::string mp;
    ~Unmount() { run(std::string(VDISK_BIN) + " unmount " + sh_quote(mp)); }
  } unmount{mp};
  CHECK(run_ok("ls " + sh_quote(mp)) == "p1\n");
  CHECK(run_ok("ls " + sh_quote(mp + "/p1")) == "medium.bin\n");
  run_ok("cmp " + sh_quote(mp + "/p1/medium.bin") + " " + sh_quote(dir / "medium.bin"));
}

TEST_CASE("ntfs: damaged volumes read what they can and name what is wrong", "[ntfs]") {
  TempDir dir;
  std::string img = dir / "v.img";
  mkntfs(img, "16M", "-s 512 -c 4096 -L dmg");
  write_random_file(dir / "a.bin", 50000, 44);
  write_random_file(dir / "b.bin", 60000, 45);
  ntfscp(img, dir / "a.bin", "/a.bin");
  ntfscp(img, dir / "b.bin", "/b.bin");
  const std::vector<uint8_t> good = read_file(img);
  const uint64_t rec_a = record_offset(img, inode_of(img, "/a.bin"));
  const uint64_t rec_vol = record_offset(img, 3);
  std::string bad = dir / "bad.img";
  auto open_bad = [&](const std::vector<uint8_t>& b) {
    write_file(bad, b);
    return ntfs::open_ntfs_tree(open_image(bad, "raw", OpenOptions{}), bad);
  };

  SECTION("a zeroed boot sector falls back to the backup with a warning") {
    auto b = good;
    std::fill(b.begin(), b.begin() + 512, 0);
    write_file(bad, b);
    RunResult r = run_vdisk("ls " + sh_quote(bad));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("backup boot sector"));
    CHECK_THAT(r.out, Catch::Contains("a.bin"));
  }
  SECTION("a torn $Volume entry is read from $MFTMirr with a warning") {
    auto b = good;
    b[rec_vol + 510] ^= 0xFF;  // the update sequence number of the first stride
    write_file(bad, b);
    RunResult r = run_vdisk("ls " + sh_quote(bad));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("$MFTMirr"));
  }
  SECTION("a dirty volume reads as it is and says so") {
    auto b = good;
    // $VOLUME_INFORMATION flags, in $MFT and $MFTMirr alike.
    const uint64_t mirror = mirror_offset(img, 3);
    for (uint64_t rec : {rec_vol, mirror}) {
      size_t vi = find_attr(b, rec, 0x70);
      size_t voff = load_le16(b.data() + rec + vi + 20);
      b[rec + vi + voff + 10] |= 1;
    }
    write_file(bad, b);
    REQUIRE_THAT(run_ok("ntfsinfo -f -m " + sh_quote(bad) + " 2>/dev/null"),
                 Catch::Contains("DIRTY"));
    RunResult r = run_vdisk("ls " + sh_quote(bad));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("not cleanly unmounted"));
    auto tree = open_bad(b);
    CHECK_THAT(tree->info().find("state")->as_string(), Catch::Contains("dirty"));
  }
  SECTION("BitLocker is named, not read") {
    auto b = good;
    std::memcpy(b.data() + 3, "-FVE-FS-", 8);
    write_file(bad, b);
    RunResult r = run_vdisk("ls " + sh_quote(bad));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("BitLocker"));
  }
  SECTION("an EFS-encrypted file is listed and refused on read") {
    auto b = good;
    size_t d = find_attr(b, rec_a, 0x80);
    b[rec_a + d + 13] |= 0x40;  // ATTRIBUTE_FLAG_ENCRYPTED (0x4000)
    auto tree = open_bad(b);
    NodeId a = resolve_tree_path(*tree, "/a.bin", bad);
    uint8_t buf[16];
    CHECK_THROWS_WITH(tree->read(a, 0, buf, sizeof buf), Catch::Contains("encrypted with EFS"));
    CHECK(read_whole(*tree, resolve_tree_path(*tree, "/b.bin", bad)) == read_file(dir / "b.bin"));
  }
  SECTION("a damaged MFT entry is a per-file error; the rest reads") {
    auto b = good;
    b[rec_a + 1022] ^= 0xFF;  // second stride's tail: the fixup no longer matches
    auto tree = open_bad(b);
    bool listed = false;
    for (const DirEntry& e : tree->list(tree->root())) listed |= e.name == "a.bin";
    CHECK(listed);
    uint8_t buf[16];
    CHECK_THROWS_WITH(tree->read(resolve_tree_path(*tree, "/a.bin", bad), 0, buf, sizeof buf),
                      Catch::Contains("update sequence"));
    CHECK(read_whole(*tree, resolve_tree_path(*tree, "/b.bin", bad)) == read_file(dir / "b.bin"));
  }
  SECTION("a data run pointing outside the volume") {
    auto b = good;
    size_t d = find_attr(b, rec_a, 0x80);
    size_t runs = load_le16(b.data() + rec_a + d + 32);
    uint8_t* r = b.data() + rec_a + d + runs;
    unsigned len_size = r[0] & 15, off_size = r[0] >> 4;
    REQUIRE(off_size >= 2);
    for (unsigned k = 0; k < off_size; ++k) r[1 + len_size + k] = k + 1 == off_size ? 0x7F : 0xFF;
    write_file(bad, b);
    RunResult res = run_vdisk("cat " + sh_quote(bad) + " /a.bin");
    CHECK(res.exit_code == 2);
    CHECK_THAT(res.err, Catch::Contains("outside the volume"));
    CHECK(std::count(res.err.begin(), res.err.end(), '\n') == 1);
    auto tree = open_bad(b);
    CHECK(read_whole(*tree, resolve_tree_path(*tree, "/b.bin", bad)) == read_file(dir / "b.bin"));
  }
}

TEST_CASE("ntfs: an index B-tree whose buffers form a cycle is refused", "[ntfs]") {
  TempDir dir;
  std::string img = dir / "v.img";
  mkntfs(img, "16M", "-s 512 -c 4096");
  // Enough names in the root for several INDX buffers under $INDEX_ROOT.
  std::string src = dir / "f";
  write_file(src, {'x'});
  for (int i = 0; i < 200; ++i) {
    ntfscp(img, src, "/a_file_with_a_longer_name_" + std::to_string(i) + ".txt");
  }
  auto tree = open_tree(img);
  REQUIRE(tree->list(tree->root()).size() == 200);
  // An inner INDX buffer (its node has children): one child VCN is pointed
  // back at the buffer itself. Bytes 510-511 of each 512-byte stride hold
  // the update sequence on disk, so an entry whose VCN covers them is
  // skipped.
  auto b = read_file(img);
  bool poked = false;
  for (uint64_t off = 0; off + 4096 <= b.size() && !poked; off += 4096) {
    if (std::memcmp(b.data() + off, "INDX", 4) != 0) continue;
    std::vector<uint8_t> fixed(b.begin() + off, b.begin() + off + 4096);
    uint32_t usa = load_le16(fixed.data() + 4);
    for (int k = 0; k < 8; ++k)
      std::memcpy(fixed.data() + 512 * k + 510, fixed.data() + usa + 2 + 2 * k, 2);
    const uint8_t* nh = fixed.data() + 24;
    if (!(load_le32(nh + 12) & 1)) continue;
    size_t pos = 24 + load_le32(nh);
    while (pos + 16 <= 4096) {
      uint32_t len = load_le16(fixed.data() + pos + 8);
      uint32_t flags = load_le32(fixed.data() + pos + 12);
      size_t vcn_at = pos + len - 8;
      if ((flags & 1) && vcn_at % 512 <= 502) {
        std::memcpy(b.data() + off + vcn_at, fixed.data() + 16, 8);  // the buffer's own VCN
        poked = true;
        break;
      }
      if ((flags & 2) || len == 0) break;
      pos += len;
    }
  }
  REQUIRE(poked);
  std::string bad = dir / "bad.img";
  write_file(bad, b);
  RunResult r = run_vdisk("ls " + sh_quote(bad));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("cycle"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("ntfs: LZNT1 decoding of hand-made chunks, and units that expand too far", "[ntfs]") {
  // "abc" then one back reference (3 back, 9 long): tag 0x08, tuple 0x2006
  // (at output position 3 the tuple has 4 offset bits and 12 length bits).
  const uint8_t chunk[] = {0x05, 0xB0, 0x08, 'a', 'b', 'c', 0x06, 0x20};
  std::vector<uint8_t> out(4096, 0);
  ntfs::Lznt1Result r = ntfs::lznt1_decompress(chunk, sizeof chunk, out.data(), out.size());
  REQUIRE(r.ok);
  CHECK(std::string(reinterpret_cast<char*>(out.data()), r.produced) == "abcabcabcabc");
  // One chunk that claims 4095 more copies than fit in a 16-byte buffer.
  const uint8_t runaway[] = {0x03, 0xB0, 0x02, 0x20, 0xFC, 0x0F};
  std::vector<uint8_t> small(16, 0);
  r = ntfs::lznt1_decompress(runaway, sizeof runaway, small.data(), small.size());
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.what, Catch::Contains("past"));
  // A back reference before the chunk start.
  const uint8_t before[] = {0x03, 0xB0, 0x02, 0x41, 0x00, 0x10};
  r = ntfs::lznt1_decompress(before, sizeof before, out.data(), out.size());
  CHECK_FALSE(r.ok);
}
