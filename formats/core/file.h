// All OS access of the format layer goes through these interfaces: a read-only
// File (pread + size), a writable OutputFile that appears under its final name
// only on commit(), and an Env that opens them. Formats never call open(2),
// read(2) or std::filesystem themselves; tests use MemEnv, fault injection
// wraps an Env.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vdisk {

// The most bytes one write system call carries. Linux (6.x) sizes the
// page-cache folios of a buffered write by the write's length, so a 4 MiB
// pwrite asks for 2 MiB (order-9) folios; on a virtual machine whose free
// page reporting (virtio-balloon) hands free order-9 blocks back to the host,
// those are the blocks that cost a host fault when touched. Measured on the
// bench machine (bench/RESULTS.md, "Write size"): 355 MB written in 4 MiB
// calls took 0.24-0.55 s, in 128 KiB calls 0.06 s every time; vdisk convert
// qcow2->raw of 2 GiB of data 1.25 s -> 0.62 s. The extra system calls cost
// about a microsecond per 128 KiB.
inline constexpr size_t kWriteSlice = size_t{128} << 10;

// Whether a byte range of a host file holds data or is a hole.
struct FileRange {
  uint64_t length = 0;
  bool hole = false;
};

// A read-only file. All methods are const and thread-safe (pread semantics).
class File {
 public:
  virtual ~File() = default;
  // The path as given by the user (used in error messages).
  virtual const std::string& path() const = 0;
  // Size in bytes at open time.
  virtual uint64_t size() const = 0;
  // Reads exactly `len` bytes at `offset`. Throws Error(kCorrupt) naming the
  // offset when the range runs past the end of the file, Error(kIo) on failure.
  virtual void read_at(uint64_t offset, void* buf, size_t len) const = 0;
  // Reads up to `len` bytes; returns the count (short only at end of file).
  virtual size_t read_some(uint64_t offset, void* buf, size_t len) const = 0;
  // Data or hole at `offset` (SEEK_DATA/SEEK_HOLE on hosts that have it);
  // returns a run of at most `len` bytes. The default says "data".
  virtual FileRange range_status(uint64_t offset, uint64_t len) const {
    return FileRange{len, false};
  }
  // Bytes the file occupies on the host (st_blocks * 512); 0 when unknown.
  virtual uint64_t allocated_on_host() const { return 0; }
  // Identity of the underlying object: equal for two paths naming one inode
  // (for a block device: one device, whichever node names it); {0, 0} when
  // unknown. Env::identity_of answers the same for a path.
  virtual std::pair<uint64_t, uint64_t> identity() const { return {0, 0}; }
  // Last modification time at open time, in seconds since
  // 1970-01-01T00:00:00Z (a differencing VHD records its parent's); nullopt
  // when unknown.
  virtual std::optional<int64_t> modified_unix() const { return std::nullopt; }
};

// A file being written. Nothing exists under path() until commit() succeeds;
// until then the bytes live in a temporary sibling that discard() (or the
// destructor) removes. Not thread-safe: one writer thread.
class OutputFile {
 public:
  virtual ~OutputFile() = default;
  // The final path.
  virtual const std::string& path() const = 0;
  // Writes `len` bytes at `offset`. A stream output (standard output) accepts
  // only offsets >= the bytes already written; a gap is filled with zeros.
  virtual void write_at(uint64_t offset, const void* buf, size_t len) = 0;
  // Sets the final length (extending makes a hole, never writes zeros on a file).
  virtual void set_size(uint64_t size) = 0;
  // Whether this output can only be appended to (a pipe or terminal).
  virtual bool is_stream() const { return false; }
  // Declares, before anything is written, the length the output will have
  // (a raw image's virtual size): a block device smaller than that refuses
  // here, so nothing of an image that cannot fit is written. No-op for files.
  virtual void reserve(uint64_t size) {}
  // Flushes, fsyncs (unless the Env is Durability::kUnsafe) and renames into
  // place. When the output was created without overwrite, fails if the final
  // path appeared in the meantime.
  virtual void commit() = 0;
  // Removes the partial file. Safe to call more than once.
  virtual void discard() = 0;
};

// A file changed in place. Only the commands that exist to change an image
// (vdisk resize) open one, through Env::open_update; every other command reads
// through File and writes new files through OutputFile. Reads see the writes
// made through this object. Not thread-safe: one thread.
class UpdateFile : public File {
 public:
  // Writes exactly `len` bytes at `offset` (extending the file if needed).
  virtual void write_at(uint64_t offset, const void* buf, size_t len) = 0;
  // Sets the length: extending makes a hole, shrinking drops the tail.
  virtual void set_size(uint64_t size) = 0;
  // Returns once everything written so far is on stable storage (fdatasync,
  // unless the Env is Durability::kUnsafe), so a write made after sync()
  // never reaches the disk before one made before it: the ordering the
  // in-place writers rely on (new tables first, then the header naming them).
  virtual void sync() = 0;
};

struct DirEntryInfo {
  std::string name;
  bool is_directory = false;
};

// What OutputFile::commit() promises about a crash of the machine (power
// loss, kernel panic). Either way the output appears under its final name only
// once complete for every process on the running system, and a killed vdisk
// leaves no file under that name.
enum class Durability {
  // fsync the data, rename, fsync the folder: after commit() returns, the
  // output survives a crash (qemu-img -t writeback).
  kFlushed,
  // No fsync, no early writeback: faster, the kernel writes the data back
  // later; a crash soon after may leave a damaged file under the final name
  // (qemu-img -t unsafe, its default for convert).
  kUnsafe,
};

class Env {
 public:
  virtual ~Env() = default;
  // Opens `path` read-only. Throws Error(kNotFound/kIo/kInvalidArgument for a
  // directory) naming the path.
  virtual std::unique_ptr<File> open_read(const std::string& path) = 0;
  // Starts an output that will appear as `path` on commit(). "-" is standard
  // output (a stream). Refuses (Error kInvalidArgument) a path that is a
  // symlink, a directory, a device node other than a block device, a FIFO or
  // a socket, and an existing file unless `overwrite`; commit() refuses too if
  // such a thing appeared meanwhile. A block device (only with `overwrite`)
  // is written in place: opened O_EXCL (refused while mounted), no rename,
  // ranges never written zeroed, data fsynced on commit().
  virtual std::unique_ptr<OutputFile> create_output(const std::string& path, bool overwrite) = 0;
  virtual bool exists(const std::string& path) = 0;
  // Opens an existing regular file for reading and writing in place, locked
  // against a second updater (flock, LOCK_EX, not waiting). Refuses symlinks,
  // block devices and anything but a regular file. Only for the commands
  // whose job is to change an image (vdisk resize); the default refuses.
  virtual std::unique_ptr<UpdateFile> open_update(const std::string& path);
  // Removes the regular file `path` (a symlink or anything else is refused,
  // never followed). Only for the commands that change an image in place
  // (vdisk resize dropping a VMDK's extent files past a shrunk end); the
  // default refuses.
  virtual void remove_file(const std::string& path);
  // Entries of a directory (no "." or ".."); throws on failure.
  virtual std::vector<DirEntryInfo> list_dir(const std::string& dir) = 0;
  // The canonical absolute path (symlinks resolved); throws when missing.
  virtual std::string real_path(const std::string& path) = 0;
  // File::identity() of what `path` names now (symlinks followed); nullopt
  // when nothing exists there (or the Env cannot tell).
  virtual std::optional<std::pair<uint64_t, uint64_t>> identity_of(const std::string& path) {
    return std::nullopt;
  }

  // The clock and the random source of writers (the VHD footer's timestamp,
  // GUIDs, VMDK CIDs), here so that a test Env can make a writer's output
  // byte-for-byte reproducible. The defaults are the host's: time(2), and
  // getrandom(2), which throws Error(kIo) when it fails (there is no weaker
  // fallback). Thread-safe.
  // Seconds since 1970-01-01T00:00:00Z.
  virtual int64_t now_unix();
  // Fills buf[0, len) with random bytes.
  virtual void random_bytes(void* buf, size_t len);
  // Four bytes of random_bytes() as a little-endian value.
  uint32_t random_u32();

  // The process-wide POSIX environment. With Durability::kUnsafe, outputs
  // skip the fsyncs of commit() (see Durability).
  static Env& posix(Durability durability = Durability::kFlushed);
};

// An Env over files held in memory, for tests and fuzzing. Paths are plain keys.
// create_output("-") is a stream (OutputFile::is_stream()) like standard
// output; commit() stores what it received under "-". The clock and the
// random source are deterministic: now_unix() answers the clock set with
// set_clock() (kDefaultClock until then), random_bytes() a splitmix64 stream
// from the seed given to seed_random() (0 until then), so two MemEnvs set
// alike make the same image from the same writes.
class MemEnv final : public Env {
 public:
  static constexpr int64_t kDefaultClock = 1700000000;  // 2023-11-14T22:13:20Z

  MemEnv();
  ~MemEnv() override;
  void add_file(const std::string& path, std::vector<uint8_t> bytes);
  // The bytes of a committed file; null when there is none. The pointer stays
  // valid until the file is replaced.
  const std::vector<uint8_t>* contents(const std::string& path) const;
  void set_clock(int64_t unix_seconds);
  void seed_random(uint64_t seed);

  std::unique_ptr<File> open_read(const std::string& path) override;
  std::unique_ptr<OutputFile> create_output(const std::string& path, bool overwrite) override;
  bool exists(const std::string& path) override;
  // Changes the stored bytes in place (readers opened before see them too).
  std::unique_ptr<UpdateFile> open_update(const std::string& path) override;
  void remove_file(const std::string& path) override;
  std::vector<DirEntryInfo> list_dir(const std::string& dir) override;
  std::string real_path(const std::string& path) override;
  std::optional<std::pair<uint64_t, uint64_t>> identity_of(const std::string& path) override;
  int64_t now_unix() override;
  void random_bytes(void* buf, size_t len) override;

  struct State;  // shared with the outputs it creates

 private:
  std::shared_ptr<State> state_;
};

// An Env that keeps a command's outputs off its inputs (a report written
// over the image, a raw output over the source's own extent or parent). It
// forwards to `base` and remembers every file opened for reading through it
// (the image, extents, parents, segments, mapfile, index: pass it as
// OpenOptions::env and wherever else the command reads); outputs are
// declared with claim_output() before any work, and create_output() checks
// each file a writer makes. A file read and a file written that are one file
// (one device+inode; for files not yet there, one resolved folder and name),
// or two outputs that are one file, throw Error(kInvalidArgument) naming both
// paths — whatever `overwrite` says. "-" (standard output) is not checked
// here. Thread-safe.
class GuardedEnv final : public Env {
 public:
  // How a declared output is made.
  enum class Maker {
    kEnv,      // through this Env's create_output() (the destination, --index)
    kCommand,  // by the command itself, elsewhere (a report, an error map)
  };
  explicit GuardedEnv(Env& base);
  ~GuardedEnv() override;
  // Declares that the command will write `path`; `role` names it in messages
  // ("the destination", "the --hash-file report"). Throws as above when it is
  // a file read so far or another declared output. Does nothing for "-".
  void claim_output(const std::string& role, const std::string& path, Maker maker);
  // Records a file read through `base` without this Env, as if opened here.
  void add_input(const std::string& path);

  std::unique_ptr<File> open_read(const std::string& path) override;
  // Refuses a path read through this Env or declared with Maker::kCommand;
  // any other new path counts as declared from now on.
  std::unique_ptr<OutputFile> create_output(const std::string& path, bool overwrite) override;
  bool exists(const std::string& path) override;
  std::vector<DirEntryInfo> list_dir(const std::string& dir) override;
  std::string real_path(const std::string& path) override;
  std::optional<std::pair<uint64_t, uint64_t>> identity_of(const std::string& path) override;
  int64_t now_unix() override;
  void random_bytes(void* buf, size_t len) override;

  struct State;

 private:
  Env& base_;
  std::unique_ptr<State> state_;
};

// A File over a byte vector (used by MemEnv and by fuzz targets).
std::unique_ptr<File> make_memory_file(std::string path, std::vector<uint8_t> bytes);

// Removes the hidden temporaries of every POSIX output not yet committed or
// discarded (O_TMPFILE outputs have none), for a process about to _exit()
// without unwinding: the CLI's signal watchdog (cli/main.cpp). Thread-safe.
void remove_partial_outputs();

// Path helpers (pure string operations).
std::string path_dirname(const std::string& path);   // "a/b" -> "a", "b" -> "."
std::string path_basename(const std::string& path);  // "a/b" -> "b"
std::string path_join(const std::string& dir, const std::string& name);
std::string path_extension(const std::string& path);  // "x.VMDK" -> "vmdk"

}  // namespace vdisk
