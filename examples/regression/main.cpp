// regression: linear regression and an MLP trained on the mean squared error, on Friedman's
// first problem (a noisy non-linear function of 5 of 10 features, see
// faltung/data/make_friedman1.hpp) or on your CSV file. Prints each model's test RMSE, R^2 and
// training time, and writes an SVG plot of the test predictions against the targets.
//
//   regression                                   Friedman's problem, 10,000 rows
//   regression --noise 0 --epochs 100            the function alone
//   regression --csv houses.csv --target price   your data, split 80/20 with --seed
//
// The pieces are in regression.hpp.

#include <CLI/CLI.hpp>
#include <faltung/faltung.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "regression/regression.hpp"

namespace {

const char* footer() {
  return R"(Notes:
  The features are standardised with the training data's mean and standard deviation, and so is
  the target while training; predictions are turned back into the target's units before RMSE and
  R^2 are computed on the test rows. Both models train with Adam in batches of --batch. With the
  default noise of 1 the best possible test R^2 is about 0.96 (the noise's share of the target's
  variance is about 1/24); a linear model reaches about 0.75.

Exit status: 0 done, 1 a failure while training or writing, 2 a bad option, 3 bad or missing data.)";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Linear regression and an MLP on a non-linear function or your CSV data (faltung " +
                   std::string(FALTUNG_VERSION_STRING) + ")",
               "regression");
  app.footer(footer());
  app.get_formatter()->column_width(30);
  regression::Options o;
  regression::add_options(app, o);
  if (const int status = faltung_examples::parse_command_line(app, o, regression::validate, argc, argv); status >= 0)
    return status;

  faltung::TrainTestSplit<float> data;
  try {
    data = regression::load_data(o);
    faltung_examples::standardize(data);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 3;
  }

  try {
    const std::string source = o.table.csv.empty() ? "Friedman #1 (noise " + faltung_examples::format_fixed(o.noise, 2) + ")"
                                                   : o.table.csv;
    std::cout << source << ": " << data.train.size() << " training and " << data.test.size() << " test rows, "
              << data.train.num_features() << " features, target '" << data.train.label_name << "'; "
              << faltung::num_threads() << " thread(s), batch " << o.table.batch << "\n\n";
    std::vector<regression::Result> results;
    for (const std::string& m : o.table.models) results.push_back(regression::train_and_test(m, data, o, std::cout));
    std::cout << regression::results_table(results);
    if (!o.plot.empty()) {
      regression::predictions_svg(results, std::vector<double>(data.test.y.begin(), data.test.y.end()),
                                  "Test predictions against targets: " + source)
          .save(o.plot);
      std::cout << "\nPlot: " << o.plot << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
