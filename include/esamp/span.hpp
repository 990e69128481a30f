// esamp::Span, a minimal C++17 stand-in for std::span over contiguous memory.
#pragma once

#include <cstddef>
#include <type_traits>

namespace esamp {

template <class T>
class Span {
 public:
  constexpr Span() = default;
  constexpr Span(T* data, std::size_t size) : data_(data), size_(size) {}
  // Any contiguous container with data() and size(): std::vector, std::array, another Span. A
  // temporary binds too: the span is then valid for the full expression, e.g. one call.
  template <class Container, class = std::enable_if_t<std::is_convertible_v<
                                 decltype(std::declval<Container&>().data()), T*>>>
  constexpr Span(Container&& c) : data_(c.data()), size_(c.size()) {}  // NOLINT: implicit by design
  template <std::size_t N>
  constexpr Span(T (&array)[N]) : data_(array), size_(N) {}  // NOLINT: implicit by design

  constexpr T* data() const { return data_; }
  constexpr std::size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T& operator[](std::size_t i) const { return data_[i]; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace esamp
