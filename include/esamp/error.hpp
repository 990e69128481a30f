// esamp::Error, the one exception type the library throws, and the helper that formats it.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace esamp {

// Every precondition failure, bad configuration, bad file or bad hook call is an Error whose
// message names what was wrong, the value seen and what was expected.
class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// open_group when every slot of the bank is taken: the one Error a caller may want to tell apart
// (close a group, or wait for one to end, and try again).
class BankFull : public Error {
 public:
  using Error::Error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace esamp
