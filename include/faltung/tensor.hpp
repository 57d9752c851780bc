#pragma once
// Shape and Tensor<T>: the one container every layer, kernel, loss and optimizer works on.
//
// A Tensor owns one contiguous, 64-byte aligned, row-major block. Image batches are (N, C, H, W);
// a batch of vectors is (N, F). Layers see shapes without the batch dimension, so a layer built
// for (1, 28, 28) is fed tensors of shape (N, 1, 28, 28).
//
// resize() keeps the allocation when the new shape fits in it: layers resize their outputs and
// workspaces every batch without allocating in the steady state.

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>

#include "faltung/config.hpp"
#include "faltung/sizes.hpp"

FALTUNG_BEGIN_NAMESPACE

/// A tensor shape of up to 6 dimensions, stored inline (copying one never allocates).
class Shape {
 public:
  static constexpr std::size_t max_rank = 6;

  Shape() = default;
  Shape(std::initializer_list<std::size_t> dims) {
    FALTUNG_CHECK(dims.size() <= max_rank, "Shape: at most ", max_rank, " dimensions, got ", dims.size());
    for (std::size_t d : dims) dims_[rank_++] = d;
  }

  std::size_t rank() const { return rank_; }
  std::size_t operator[](std::size_t i) const { return dims_[i]; }
  std::size_t& operator[](std::size_t i) { return dims_[i]; }
  const std::size_t* begin() const { return dims_.data(); }
  const std::size_t* end() const { return dims_.data() + rank_; }

  /// The number of elements: the product of the dimensions (1 for rank 0). Throws when the
  /// product does not fit in std::size_t.
  std::size_t numel() const { return checked_product(begin(), end(), "Shape ", *this, ": the number of elements"); }

  /// This shape with `n` put in front: a layer's per-sample shape becomes a batch shape.
  Shape with_batch(std::size_t n) const {
    FALTUNG_CHECK(rank_ < max_rank, "Shape: cannot add a batch dimension to ", to_string());
    Shape s;
    s.dims_[0] = n;
    for (std::size_t i = 0; i < rank_; ++i) s.dims_[i + 1] = dims_[i];
    s.rank_ = rank_ + 1;
    return s;
  }

  /// This shape without its first (batch) dimension.
  Shape without_batch() const {
    FALTUNG_CHECK(rank_ >= 1, "Shape: a scalar shape has no batch dimension");
    Shape s;
    for (std::size_t i = 1; i < rank_; ++i) s.dims_[i - 1] = dims_[i];
    s.rank_ = rank_ - 1;
    return s;
  }

  void push_back(std::size_t d) {
    FALTUNG_CHECK(rank_ < max_rank, "Shape: at most ", max_rank, " dimensions");
    dims_[rank_++] = d;
  }

  /// "(1, 28, 28)"
  std::string to_string() const {
    std::ostringstream os;
    os << '(';
    for (std::size_t i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
    os << ')';
    return os.str();
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (std::size_t i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.to_string(); }

 private:
  std::array<std::size_t, max_rank> dims_{};
  std::size_t rank_ = 0;
};

namespace detail {
constexpr std::size_t tensor_alignment = 64;  // one cache line, and one AVX-512 register

struct AlignedFree {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t(tensor_alignment)); }
};

/// n elements of T, 64-byte aligned; faltung::Error naming `shape` when the memory is not there.
template <class T>
T* aligned_new(std::size_t n, const Shape& shape) {
  if (n == 0) return nullptr;
  const std::size_t bytes = checked_mul(n, sizeof(T), "Tensor of shape ", shape, ": the number of bytes");
  try {
    return static_cast<T*>(::operator new(bytes, std::align_val_t(tensor_alignment)));
  } catch (const std::bad_alloc&) {
    fail("Tensor of shape ", shape, ": out of memory allocating ", bytes, " bytes");
  }
}
}  // namespace detail

/// A dense, contiguous, row-major tensor of float or double that owns its memory.
/// Copies are deep; moves are cheap. New elements are zero.
template <class T>
class Tensor {
  static_assert(std::is_floating_point<T>::value, "Tensor<T>: T must be float or double");

 public:
  using Scalar = T;
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  using MatrixMap = Eigen::Map<Matrix, Eigen::Aligned64>;
  using ConstMatrixMap = Eigen::Map<const Matrix, Eigen::Aligned64>;
  using VectorMap = Eigen::Map<Vector, Eigen::Aligned64>;
  using ConstVectorMap = Eigen::Map<const Vector, Eigen::Aligned64>;

  Tensor() = default;
  explicit Tensor(const Shape& shape) { resize(shape); }
  Tensor(const Shape& shape, T fill_value) {
    resize(shape);
    fill(fill_value);
  }
  /// A tensor of the given shape holding `values` (row-major); their count must match.
  Tensor(const Shape& shape, std::initializer_list<T> values) {
    FALTUNG_CHECK(values.size() == shape.numel(), "Tensor: shape ", shape, " needs ", shape.numel(),
                  " values, got ", values.size());
    resize(shape);
    std::copy(values.begin(), values.end(), data_.get());
  }

  Tensor(const Tensor& other) { *this = other; }
  Tensor& operator=(const Tensor& other) {
    if (this != &other) {
      resize(other.shape_);
      size_ = other.size_;  // a default (empty) tensor has rank 0, whose numel() is 1, but no element
      if (size_) std::memcpy(data_.get(), other.data_.get(), size_ * sizeof(T));
    }
    return *this;
  }
  Tensor(Tensor&& other) noexcept { swap(other); }
  Tensor& operator=(Tensor&& other) noexcept {
    swap(other);
    return *this;
  }
  void swap(Tensor& other) noexcept {
    std::swap(shape_, other.shape_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    std::swap(data_, other.data_);
  }

  /// Gives the tensor a new shape. The allocation is kept when it is large enough, so a tensor
  /// reused batch after batch allocates only once. A new allocation starts zeroed; otherwise the
  /// values are whatever the memory last held (callers overwrite them), unless the shape is unchanged.
  /// A shape beyond SizeLimits::max_tensor_elements, or memory that is not there, is a faltung::Error.
  void resize(const Shape& shape) {
    const std::size_t n = shape.numel();
    if (n > capacity_) {
      check_tensor_elements(n, "Tensor of shape ", shape);
      data_.reset(detail::aligned_new<T>(n, shape));
      std::memset(static_cast<void*>(data_.get()), 0, n * sizeof(T));
      capacity_ = n;
    }
    shape_ = shape;
    size_ = n;
  }

  /// Reinterprets the same elements with another shape of the same element count.
  void reshape(const Shape& shape) {
    FALTUNG_CHECK(shape.numel() == size_, "Tensor::reshape: cannot view ", shape_, " (", size_,
                  " elements) as ", shape, " (", shape.numel(), " elements)");
    shape_ = shape;
  }

  const Shape& shape() const { return shape_; }
  std::size_t dim(std::size_t i) const { return shape_[i]; }
  std::size_t rank() const { return shape_.rank(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T* begin() { return data_.get(); }
  T* end() { return data_.get() + size_; }
  const T* begin() const { return data_.get(); }
  const T* end() const { return data_.get() + size_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

  /// Element access by full index, checked against the shape: t.at({n, c, h, w}).
  T& at(std::initializer_list<std::size_t> index) { return data_[offset(index)]; }
  const T& at(std::initializer_list<std::size_t> index) const { return data_[offset(index)]; }

  void fill(T value) { std::fill(begin(), end(), value); }
  void set_zero() { fill(T(0)); }

  /// The elements as a (rows, cols) row-major matrix; rows * cols must equal size().
  MatrixMap as_matrix(std::size_t rows, std::size_t cols) {
    check_matrix(rows, cols);
    return MatrixMap(data(), Eigen::Index(rows), Eigen::Index(cols));
  }
  ConstMatrixMap as_matrix(std::size_t rows, std::size_t cols) const {
    check_matrix(rows, cols);
    return ConstMatrixMap(data(), Eigen::Index(rows), Eigen::Index(cols));
  }
  /// The elements as a (dim(0), size / dim(0)) matrix: one row per sample.
  MatrixMap as_matrix() { return as_matrix(rows_of_first_dim(), size_ / rows_of_first_dim()); }
  ConstMatrixMap as_matrix() const { return as_matrix(rows_of_first_dim(), size_ / rows_of_first_dim()); }
  VectorMap as_vector() { return VectorMap(data(), Eigen::Index(size_)); }
  ConstVectorMap as_vector() const { return ConstVectorMap(data(), Eigen::Index(size_)); }

 private:
  std::size_t rows_of_first_dim() const { return shape_.rank() == 0 || shape_[0] == 0 ? 1 : shape_[0]; }
  void check_matrix(std::size_t rows, std::size_t cols) const {
    FALTUNG_CHECK(checked_mul(rows, cols, "Tensor::as_matrix") == size_, "Tensor::as_matrix: ", rows, " x ", cols, " does not match ",
                  shape_, " (", size_, " elements)");
  }
  std::size_t offset(std::initializer_list<std::size_t> index) const {
    FALTUNG_CHECK(index.size() == shape_.rank(), "Tensor::at: ", index.size(), " indices for shape ", shape_);
    std::size_t off = 0, i = 0;
    for (std::size_t k : index) {
      FALTUNG_CHECK(k < shape_[i], "Tensor::at: index ", k, " out of range in dimension ", i, " of ", shape_);
      off = off * shape_[i++] + k;
    }
    return off;
  }

  Shape shape_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  std::unique_ptr<T[], detail::AlignedFree> data_;
};

/// Copies `src` into a tensor of another scalar type (float <-> double).
template <class To, class From>
Tensor<To> tensor_cast(const Tensor<From>& src) {
  Tensor<To> dst(src.shape());
  for (std::size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<To>(src[i]);
  return dst;
}

FALTUNG_END_NAMESPACE
