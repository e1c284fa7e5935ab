#include "formats/core/child_writer.h"

#include <algorithm>
#include <cstring>

#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk {

std::vector<OptionSpec> backing_options(const std::string& what) {
  return {
      {"backing_file",
       OptionType::kString,
       "",
       "make " + what +
           " over this image (relative to the output's folder), storing only the "
           "units that differ from it",
       {}},
      {"backing_fmt", OptionType::kString, "", "format of backing_file (default: probe)", {}},
  };
}

std::string backing_name(const CreateRequest& req, const std::string& label) {
  const std::string name = req.options.get_string("backing_file");
  if (name.empty() && !req.options.get_string("backing_fmt").empty())
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                label + " option backing_fmt needs backing_file");
  return name;
}

Backing open_backing(const CreateRequest& req, const std::string& name, const std::string& format,
                     const std::string& own_format, const std::string& format_label) {
  if (!req.open_image)
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                format_label + " backing_file: this caller cannot open images");
  if (req.path == "-")
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                format_label + " children are written to files, not standard output");
  const std::string path = name[0] == '/' ? name : path_join(path_dirname(req.path), name);
  Env& env = req.environment();
  const auto out_id = env.identity_of(req.path);
  if (out_id && out_id == env.identity_of(path))
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "backing file '" + name + "' is the output itself");
  BlockDevicePtr backing = req.open_image(path, format);
  const std::string top = backing->layers().front()->info().format;
  if (top != own_format)
    throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                "is " + top + ": a " + own_format +
                    " child records its parent's identity, so its parent must be " + own_format +
                    " too");
  if (backing->size() != req.virtual_size)
    throw Error(ErrorKind::kUnsupported, req.path, std::nullopt,
                "a " + format_label + " child has its parent's size (" +
                    std::to_string(backing->size()) + " bytes), not " +
                    std::to_string(req.virtual_size));
  return {std::move(backing), path};
}

ChildFilter::ChildFilter(std::unique_ptr<ImageWriter> inner, BlockDevicePtr backing, uint64_t unit)
    : inner_(std::move(inner)),
      backing_(std::move(backing)),
      unit_(unit),
      buf_(static_cast<size_t>(unit)),
      theirs_(static_cast<size_t>(unit)) {}

void ChildFilter::start_unit(uint64_t u) {
  if (u == current_) return;
  flush_unit();
  current_ = u;
  std::fill(buf_.begin(), buf_.end(), 0);
}

uint64_t ChildFilter::backing_zero_until(uint64_t offset, uint64_t limit) const {
  const uint64_t end = std::min(limit, backing_->size());
  for (uint64_t at = offset; at < end;) {
    const Extent e = backing_->block_status(at, end - at);
    if (e.type == ExtentType::kData) return at;
    at += e.length;
  }
  return limit;
}

void ChildFilter::flush_unit() {
  if (current_ == ~uint64_t{0}) return;
  const uint64_t off = current_ * unit_;
  const uint64_t n = std::min(unit_, virtual_size() - off);
  current_ = ~uint64_t{0};
  std::fill(theirs_.begin(), theirs_.end(), 0);
  if (off < backing_->size())
    backing_->read(off, theirs_.data(), static_cast<size_t>(std::min(n, backing_->size() - off)));
  if (std::memcmp(buf_.data(), theirs_.data(), static_cast<size_t>(n)) != 0)
    inner_->write(off, buf_.data(), static_cast<size_t>(n));
}

void ChildFilter::write(uint64_t offset, const void* buf, size_t len) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (len > 0) {
    start_unit(offset / unit_);
    const uint64_t in = offset % unit_;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, unit_ - in));
    std::memcpy(buf_.data() + in, p, n);
    p += n;
    offset += n;
    len -= n;
  }
}

void ChildFilter::write_zeroes(uint64_t offset, uint64_t len) {
  const uint64_t end = offset + len;
  while (offset < end) {
    const uint64_t u = offset / unit_;
    const uint64_t ustart = u * unit_;
    const uint64_t uend = std::min(ustart + unit_, virtual_size());
    if (offset != ustart || end < uend) {
      // Part of a unit: gathered (buf_ is zero-filled when a unit starts).
      start_unit(u);
      offset = std::min(uend, end);
      continue;
    }
    // Whole units: those over backing zeros are the parent's as they are;
    // the rest are stored as zeros.
    flush_unit();
    const uint64_t data_at = backing_zero_until(ustart, end);
    if (data_at >= uend) {
      // A unit left partly covered at `end` is gathered by the writes that
      // follow (the stream reaches the virtual size).
      offset = data_at == end ? end : data_at / unit_ * unit_;
      continue;
    }
    current_ = u;
    std::fill(buf_.begin(), buf_.end(), 0);
    flush_unit();
    offset = uend;
  }
}

void ChildFilter::finish() {
  flush_unit();
  inner_->finish();
}

}  // namespace vdisk
