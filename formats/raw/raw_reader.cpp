#include "formats/raw/raw_reader.h"

#include <algorithm>
#include <cctype>

#include "formats/core/error.h"

namespace vdisk::raw {

namespace {

// Width of an alphabetic split(1) suffix, 0 when there is none: the trailing
// lower-case letters after a '.', '_' or '-' ("disk.aa"), or the last two
// letters of an all-letter name ("xaa": split's default prefix and width).
size_t alpha_suffix_width(const std::string& name) {
  size_t base_start = name.find_last_of('/') == std::string::npos ? 0 : name.find_last_of('/') + 1;
  size_t i = name.size();
  while (i > base_start && name[i - 1] >= 'a' && name[i - 1] <= 'z') --i;
  size_t run = name.size() - i;
  if (i == base_start) {
    // The whole base name is letters ("xaa", "xab"): split's default prefix is
    // one letter, its default suffix two.
    return run >= 3 ? 2 : 0;
  }
  if (name[i - 1] == '.' || name[i - 1] == '_' || name[i - 1] == '-') return run >= 2 ? run : 0;
  return 0;
}

// The name after `name` in a split(1)/FTK numbering, or "" when there is none:
// a trailing run of >= 2 digits ("image.001" -> "image.002", "x00" -> "x01"),
// or of >= 2 lower-case letters ("xaa" -> "xab").
std::string next_part_name(const std::string& name) {
  size_t end = name.size();
  size_t i = end;
  while (i > 0 && std::isdigit(static_cast<unsigned char>(name[i - 1]))) --i;
  if (end - i >= 2) {
    std::string digits = name.substr(i);
    std::string next = digits;
    for (size_t k = next.size(); k-- > 0;) {
      if (next[k] == '9') {
        next[k] = '0';
        if (k == 0) return "";  // width exhausted
      } else {
        ++next[k];
        break;
      }
    }
    return name.substr(0, i) + next;
  }
  // split(1)'s alphabetic suffixes: the width is fixed by the first part
  // ("xaa": 2), so count trailing letters only as far as the suffix width.
  size_t width = alpha_suffix_width(name);
  if (width >= 2) {
    std::string letters = name.substr(end - width);
    for (size_t k = letters.size(); k-- > 0;) {
      if (letters[k] == 'z') {
        letters[k] = 'a';
        if (k == 0) return "";
      } else {
        ++letters[k];
        break;
      }
    }
    return name.substr(0, end - width) + letters;
  }
  return "";
}

// Whether `name` looks like the first part of a set (.000/.001, x00/x01, xaa).
bool is_first_part_name(const std::string& name) {
  size_t i = name.size();
  while (i > 0 && std::isdigit(static_cast<unsigned char>(name[i - 1]))) --i;
  if (name.size() - i >= 2) {
    std::string digits = name.substr(i);
    return std::all_of(digits.begin(), digits.end() - 1, [](char c) { return c == '0'; }) &&
           (digits.back() == '0' || digits.back() == '1');
  }
  // Alphabetic sets start at "aa…a".
  size_t width = alpha_suffix_width(name);
  return width >= 2 && name.compare(name.size() - width, width, std::string(width, 'a')) == 0;
  return false;
}

}  // namespace

std::vector<std::string> find_split_parts(Env& env, const std::string& path) {
  std::vector<std::string> parts;
  if (!is_first_part_name(path_basename(path))) return parts;
  std::string next = next_part_name(path);
  // A set never has more parts than its numbering can name; 100000 bounds the
  // loop for pathological names.
  while (!next.empty() && parts.size() < 100000 && env.exists(next)) {
    parts.push_back(next);
    next = next_part_name(next);
  }
  return parts;
}

ConcatDevice::ConcatDevice(std::vector<std::shared_ptr<const File>> parts)
    : parts_(std::move(parts)) {
  for (auto& p : parts_) {
    starts_.push_back(size_);
    size_ = checked_add(size_, p->size(), p->path(), 0, "split set size");
  }
}

size_t ConcatDevice::part_at(uint64_t offset) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
  size_t idx = static_cast<size_t>(it - starts_.begin()) - 1;
  // Skip empty parts that share a start offset.
  while (idx + 1 < parts_.size() && parts_[idx]->size() == 0) ++idx;
  return idx;
}

void ConcatDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  while (len > 0) {
    size_t i = part_at(offset);
    uint64_t in_part = offset - starts_[i];
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, parts_[i]->size() - in_part));
    parts_[i]->read_at(in_part, out, n);
    out += n;
    offset += n;
    len -= n;
  }
}

Extent ConcatDevice::do_block_status(uint64_t offset, uint64_t len) const {
  size_t i = part_at(offset);
  uint64_t in_part = offset - starts_[i];
  uint64_t n = std::min<uint64_t>(len, parts_[i]->size() - in_part);
  FileRange r = parts_[i]->range_status(in_part, n);
  if (r.length == 0 || r.length > n) r.length = n;
  return Extent{r.length, r.hole ? ExtentType::kUnallocated : ExtentType::kData};
}

ImageInfo ConcatDevice::info() const {
  ImageInfo info;
  info.path = parts_.front()->path();
  info.format = "raw";
  info.subformat = "split";
  info.virtual_size = size_;
  Json parts = Json::array();
  for (auto& p : parts_) {
    info.actual_size += p->allocated_on_host();
    Json j = Json::object();
    j.set("file", p->path());
    j.set("size", p->size());
    parts.push(std::move(j));
  }
  info.details.set("parts", std::move(parts));
  return info;
}

BlockDevicePtr open_raw(std::shared_ptr<const File> file, const OpenOptions& opts) {
  std::vector<std::string> more = find_split_parts(opts.environment(), file->path());
  if (more.empty()) {
    auto dev = std::make_shared<FileDevice>(file, 0, file->size(), "raw");
    return dev;
  }
  std::vector<std::shared_ptr<const File>> parts{file};
  for (auto& name : more) parts.push_back(opts.environment().open_read(name));
  return std::make_shared<ConcatDevice>(std::move(parts));
}

}  // namespace vdisk::raw
