// JsonWriter: separators, escapes, non-finite numbers and broken UTF-8, read back by parse_json.
#include <catch2/catch.hpp>
#include <limits>

#include "generate/json_writer.hpp"
#include "generate_test_support.hpp"

namespace esamp::generation::test {

TEST_CASE("JsonWriter separates nested members and escapes what JSON requires") {
  JsonWriter json;
  json.begin_object();
  json.key("text").value("a \"quote\", a \\ and\na newline\t\x01");
  json.key("numbers").begin_array().value(1).value(-2.5).value(
      std::numeric_limits<double>::quiet_NaN());
  json.end_array();
  json.key("empty").begin_object().end_object();
  json.key("flags").begin_array().value(true).value(false).end_array();
  json.end_object();
  CHECK(json.text() ==
        R"({"text":"a \"quote\", a \\ and\na newline\t\u0001","numbers":[1,-2.5,null],)"
        R"("empty":{},"flags":[true,false]})");
  const JsonValue parsed = parse_json(json.text());
  CHECK(parsed["text"].string == "a \"quote\", a \\ and\na newline\t\x01");
  CHECK(parsed["numbers"].array[1].number == -2.5);
  CHECK(parsed["numbers"].array[2].kind == JsonValue::Kind::null);
  CHECK(parsed["flags"].array[0].boolean);
}

TEST_CASE("JsonWriter keeps well-formed UTF-8 and replaces each stray byte with U+FFFD") {
  JsonWriter json;
  // "é" and "€" are whole; then a lone continuation byte, a truncated 3-byte sequence, an
  // overlong "/" and a surrogate.
  json.value("\xc3\xa9\xe2\x82\xac|\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80");
  CHECK(json.text() ==
        "\"\xc3\xa9\xe2\x82\xac|\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\"");
}

}  // namespace esamp::generation::test
