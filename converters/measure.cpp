#include "converters/measure.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "converters/convert.h"
#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk {

namespace {

// The final lengths of the files a writer committed, by path.
struct Lengths {
  std::mutex mu;
  std::map<std::string, uint64_t> committed;
  uint64_t total() {
    std::lock_guard<std::mutex> lock(mu);
    uint64_t t = 0;
    for (const auto& [path, len] : committed) t += len;
    return t;
  }
};

// An output that keeps its length only.
class LengthOutput final : public OutputFile {
 public:
  LengthOutput(std::string path, std::shared_ptr<Lengths> lengths)
      : path_(std::move(path)), lengths_(std::move(lengths)) {}
  const std::string& path() const override { return path_; }
  void write_at(uint64_t offset, const void*, size_t len) override {
    size_ = std::max(size_, offset + len);
  }
  void set_size(uint64_t size) override { size_ = size; }
  void commit() override {
    std::lock_guard<std::mutex> lock(lengths_->mu);
    lengths_->committed[path_] = size_;
  }
  void discard() override {}

 private:
  std::string path_;
  std::shared_ptr<Lengths> lengths_;
  uint64_t size_ = 0;
};

// Reads from the real Env (a backing image), writes into lengths.
class LengthEnv final : public Env {
 public:
  explicit LengthEnv(Env& base) : base_(base), lengths_(std::make_shared<Lengths>()) {}
  std::unique_ptr<File> open_read(const std::string& path) override {
    return base_.open_read(path);
  }
  std::unique_ptr<OutputFile> create_output(const std::string& path, bool) override {
    return std::make_unique<LengthOutput>(path, lengths_);
  }
  // Outputs are never there: the measure is of a new image.
  bool exists(const std::string& path) override {
    std::lock_guard<std::mutex> lock(lengths_->mu);
    return lengths_->committed.count(path) != 0;
  }
  std::vector<DirEntryInfo> list_dir(const std::string& dir) override {
    return base_.list_dir(dir);
  }
  std::string real_path(const std::string& path) override { return base_.real_path(path); }
  int64_t now_unix() override { return base_.now_unix(); }
  void random_bytes(void* buf, size_t len) override { base_.random_bytes(buf, len); }
  uint64_t total() { return lengths_->total(); }

 private:
  Env& base_;
  std::shared_ptr<Lengths> lengths_;
};

// Fills `buf` with a splitmix64 stream: no block is zero and compressors
// find nothing to gain.
void fill_incompressible(std::vector<uint8_t>& buf) {
  uint64_t state = 0x632BE59BD9B4E019ull;
  for (size_t i = 0; i < buf.size(); i += 8) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::memcpy(buf.data() + i, &z, std::min<size_t>(8, buf.size() - i));
  }
}

enum class Fill { kContent, kZeros, kFull };

// Runs the writer into a LengthEnv over `content` (kContent), an all-zero
// guest or a fully allocated one.
uint64_t run_writer(const FormatDescriptor& format, CreateRequest req, const BlockDevice* content,
                    Fill fill, const std::atomic<bool>* cancel, uint64_t* virtual_size) {
  LengthEnv env(req.environment());
  req.env = &env;
  req.overwrite = true;
  req.source = fill == Fill::kContent ? content : nullptr;
  req.warn = [](const std::string&) {};
  std::unique_ptr<ImageWriter> writer = format.create(req);
  if (virtual_size) *virtual_size = writer->virtual_size();
  if (fill == Fill::kContent) {
    CopyOptions o;
    o.cancel = cancel;
    o.phase = "measuring";
    copy_device(*content, writer.get(), o);
  } else if (fill == Fill::kZeros) {
    if (req.virtual_size > 0) writer->write_zeroes(0, req.virtual_size);
  } else {
    // Written straight to the writer (the copy engine would only generate
    // and scan the bytes): one buffer, handed over again and again.
    std::vector<uint8_t> buf(4 << 20);
    fill_incompressible(buf);
    for (uint64_t off = 0; off < req.virtual_size; off += buf.size()) {
      if (cancel && cancel->load())
        throw Error(ErrorKind::kInterrupted, req.path, std::nullopt, "interrupted");
      writer->write(off, buf.data(),
                    static_cast<size_t>(std::min<uint64_t>(buf.size(), req.virtual_size - off)));
    }
  }
  writer->finish();
  return env.total();
}

}  // namespace

Measurement measure_output(const FormatDescriptor& format, const CreateRequest& req,
                           const BlockDevice* content, const std::atomic<bool>* cancel) {
  Measurement m;
  m.required = run_writer(format, req, content, content ? Fill::kContent : Fill::kZeros, cancel,
                          &m.virtual_size);
  CreateRequest full = req;
  if (content) full.virtual_size = content->size();
  m.fully_allocated = run_writer(format, full, nullptr, Fill::kFull, cancel, nullptr);
  return m;
}

}  // namespace vdisk
