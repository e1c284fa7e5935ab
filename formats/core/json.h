// A small ordered JSON value, used for `info` details, `map`, hash reports and
// every --output json. Objects keep insertion order so output is stable.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace vdisk {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() : v_(nullptr) {}
  Json(std::nullptr_t) : v_(nullptr) {}
  Json(bool b) : v_(b) {}
  Json(int i) : v_(static_cast<int64_t>(i)) {}
  Json(long i) : v_(static_cast<int64_t>(i)) {}
  Json(long long i) : v_(static_cast<int64_t>(i)) {}
  Json(unsigned i) : v_(static_cast<uint64_t>(i)) {}
  Json(unsigned long i) : v_(static_cast<uint64_t>(i)) {}
  Json(unsigned long long i) : v_(static_cast<uint64_t>(i)) {}
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  static Json object() { return Json(Object{}); }
  static Json array() { return Json(Array{}); }

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_number() const {
    return std::holds_alternative<int64_t>(v_) || std::holds_alternative<uint64_t>(v_) ||
           std::holds_alternative<double>(v_);
  }

  // Object access: set() replaces an existing key or appends; operator[] on a
  // missing key appends null. Both turn a null value into an object.
  Json& set(const std::string& key, Json value);
  Json& operator[](const std::string& key);
  const Json* find(const std::string& key) const;
  // Array append (turns null into an array).
  Json& push(Json value);

  const Object& as_object() const { return std::get<Object>(v_); }
  const Array& as_array() const { return std::get<Array>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  bool as_bool() const { return std::get<bool>(v_); }
  uint64_t as_u64() const;
  int64_t as_i64() const;
  double as_double() const;

  // Serialises; indent < 0 gives one line.
  std::string dump(int indent = -1) const;
  // Parses JSON text (used for reports); throws Error(kInvalidArgument).
  static Json parse(const std::string& text);

 private:
  void dump_to(std::string& out, int indent, int depth) const;
  std::variant<std::nullptr_t, bool, int64_t, uint64_t, double, std::string, Array, Object> v_;
};

std::string json_escape(const std::string& s);

}  // namespace vdisk
