#pragma once
// TabularData<T>: a table of numeric features with one label per row, as the CSV loader
// (data/csv.hpp) and the generators (data/make_classification.hpp, data/make_friedman1.hpp) make it,
// and as train_test_split (data/train_test_split.hpp) and StandardScaler
// (data/standard_scaler.hpp) take it.
//
// x and y are ordinary tensors, ready for a model: a network for F features is built with
// build({F}); y is (N, 1), the shape of a Dense(1) output, so BinaryCrossEntropy and
// MeanSquaredError take it as it is, and SparseCrossEntropy takes (N, 1) class indices too.

#include <cstddef>
#include <string>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
struct TabularData {
  Tensor<T> x;  ///< (N, F): one row per sample, one column per feature
  Tensor<T> y;  ///< (N, 1): the label of each row: a value (regression) or a class index
  std::vector<std::string> feature_names;  ///< F names, in the order of x's columns
  std::string label_name;                  ///< the label column's name
  /// For classification: the name of class k is class_names[k], and y holds indices 0..K-1.
  /// Empty when y holds values (regression).
  std::vector<std::string> class_names;

  /// The number of rows N.
  std::size_t size() const { return x.rank() == 2 ? x.dim(0) : 0; }
  /// The number of features F.
  std::size_t num_features() const { return x.rank() == 2 ? x.dim(1) : 0; }
  /// The number of classes K (0 for regression).
  std::size_t num_classes() const { return class_names.size(); }
  /// The shape of one sample, (F): what a model for this table is built for.
  Shape sample_shape() const { return Shape{num_features()}; }

  /// Checks the invariants (x is (N, F) with F names, y is (N, 1), class indices are in
  /// range); throws faltung::Error naming `what` and the first one that does not hold. The
  /// fields are public, so every function that takes a TabularData checks it first.
  void check(const char* what) const {
    FALTUNG_CHECK(x.rank() == 2, what, ": features must be (N, F), got ", x.shape());
    FALTUNG_CHECK(y.rank() == 2 && y.dim(0) == x.dim(0) && y.dim(1) == 1, what, ": labels must be (N, 1) = (",
                  x.dim(0), ", 1) for features ", x.shape(), ", got ", y.shape());
    FALTUNG_CHECK(feature_names.size() == x.dim(1), what, ": ", x.dim(1), " feature columns but ",
                  feature_names.size(), " feature names");
    if (!class_names.empty())
      for (std::size_t i = 0; i < y.size(); ++i)
        FALTUNG_CHECK(y[i] >= T(0) && y[i] < T(class_names.size()) && y[i] == T(std::size_t(y[i])), what,
                      ": label of row ", i, " is ", y[i], ", not a class index in [0, ", class_names.size(), ")");
  }
};

FALTUNG_END_NAMESPACE
