// The README's "Writing your own layer": the layer exactly as the README shows it builds, passes
// the gradient checker, trains inside a Sequential, and round-trips through a model file. When
// the Layer contract changes, this file and the README's snippet change together.

#include <gtest/gtest.h>

#include <algorithm>
#include <faltung/faltung.hpp>
#include <memory>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace faltung;

// ---- the README's snippet, verbatim -------------------------------------------------------
// y = x * gamma: one learnable factor per input value, starting at 1.
template <class T>
class Scale : public Layer<T> {
 public:
  std::string type() const override { return "Scale"; }          // in summary()
  std::string default_name() const override { return "scale"; }  // scale, scale_1, ...
  std::string spec() const override { return "scale"; }          // in spec() and model files
  Shape output_shape(const Shape& in) const override { return in; }
  void build(const Shape& in, Random& rng) override {
    Layer<T>::build(in, rng);  // records the shapes, marks the layer built
    gamma_ = Parameter<T>("gamma", in);
    gamma_.value.fill(T(1));
  }
  std::vector<Parameter<T>*> parameters() override { return {&gamma_}; }
  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<Scale>(*this); }

 protected:
  // Called by forward() and backward() once they have checked every shape (and sized dx).
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override {
    y.resize(x.shape());
    const std::size_t n = gamma_.value.size();
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * gamma_.value[i % n];
  }
  void backward_impl(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>& dx) override {
    const std::size_t n = gamma_.value.size();
    for (std::size_t i = 0; i < x.size(); ++i) gamma_.grad[i % n] += dy[i] * x[i];  // ADD to grads
    if (!this->input_grad_needed()) return;
    for (std::size_t i = 0; i < x.size(); ++i) dx[i] = dy[i] * gamma_.value[i % n];  // WRITE dx
  }

 private:
  Parameter<T> gamma_;
};
// ---- end of the snippet ----------------------------------------------------------------------

TEST(OwnLayer, PassesTheGradientCheckerInDouble) {
  Scale<double> scale;
  Random rng(1);
  scale.build({2, 3, 3}, rng);
  // Factors other than 1, so that a backward that forgot gamma in dx would fail.
  for (double& g : scale.parameters()[0]->value) g = rng.uniform(-2.0, 2.0);
  const GradCheckResult r = gradcheck(scale, random_tensor<double>({4, 2, 3, 3}, rng));
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 0u);
}

TEST(OwnLayer, TrainsInsideASequentialAndRoundTripsThroughAFile) {
  // The README's use: between two built-in layers, built, compiled and fitted like them.
  Sequential<float> net(7);
  net.add<Flatten>().add(Scale<float>()).add<Dense>(3);
  net.build({1, 2, 2});
  EXPECT_EQ(net.spec(), "flatten,scale,dense:3");
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.05)));
  Random rng(2);
  const Tensor<float> x = random_tensor<float>({30, 1, 2, 2}, rng);
  Tensor<float> y(Shape{30});
  for (std::size_t i = 0; i < 30; ++i) y[i] = float(i % 3);
  const History h = net.fit(x, y, FitOptions().epochs(20).batch_size(10).verbose(0));
  EXPECT_LT(h.loss.back(), h.loss.front());
  Parameter<float>* gamma = nullptr;
  for (Parameter<float>* p : net.parameters())
    if (p->name.find("gamma") != std::string::npos) gamma = p;
  ASSERT_NE(gamma, nullptr);
  EXPECT_NE(gamma->value[0], 1.0f);  // it learned

  // load_model cannot rebuild a layer it does not know, so build the model in code and load
  // the weights into it.
  test::TempDir tmp;
  net.save(tmp.path("own.faltung"));
  Sequential<float> again(1);
  again.add<Flatten>().add(Scale<float>()).add<Dense>(3);
  again.build({1, 2, 2});
  again.load_weights(tmp.path("own.faltung"));
  const std::vector<Parameter<float>*> trained = net.parameters(), loaded = again.parameters();
  ASSERT_EQ(trained.size(), loaded.size());
  for (std::size_t i = 0; i < trained.size(); ++i)
    EXPECT_TRUE(std::equal(trained[i]->value.begin(), trained[i]->value.end(), loaded[i]->value.begin()))
        << trained[i]->name;
  EXPECT_NE(test::error_of([&] { load_model<float>(tmp.path("own.faltung")); }).find("scale"), std::string::npos);
}

}  // namespace
