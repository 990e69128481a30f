// JsonWriter: compact JSON text built by nested begin/end calls (no JSON library is a dependency).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace esamp::generation {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // The key of the next value inside an object.
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);  // escaped; bytes of broken UTF-8 become U+FFFD
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(double number);  // NaN and infinities become null (JSON has no such numbers)
  JsonWriter& value(std::int64_t number);
  JsonWriter& value(int number) { return value(static_cast<std::int64_t>(number)); }
  JsonWriter& value(bool flag);

  // The text so far; complete once every begin has its end.
  const std::string& text() const { return text_; }

 private:
  void before_value();  // the comma between siblings

  std::string text_;
  std::vector<bool> container_has_items_;  // one per open object or array
  bool after_key_ = false;
};

}  // namespace esamp::generation
