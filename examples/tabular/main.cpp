// tabular: the lecture's comparison on tabular data. Logistic regression (a Dense layer with the
// sigmoid of BinaryCrossEntropy, trained by Adam) and a multi-layer perceptron, on a generated
// classification set (scikit-learn's make_classification, 50,000 x 20 by default) or on your
// CSV file; prints model, accuracy and training time.
//
//   tabular                                        the lecture's 50,000 x 20 set
//   tabular --samples 500000 --features 30         the lecture's large set
//   tabular --csv data.csv --label outcome         your data, split 80/20 with --seed
//   tabular --csv train.csv --test-csv test.csv --label 0
//   tabular --write-csv sets/small                 write the generated split as CSV, for other tools
//
// compare_baselines.py runs this program, scikit-learn's LogisticRegression, XGBoost and a
// PyTorch MLP on the same CSV files and prints one table. The pieces are in tabular.hpp.

#include <CLI/CLI.hpp>
#include <faltung/faltung.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "tabular/tabular.hpp"

namespace {

const char* footer() {
  return R"(Notes:
  The features are standardised with the training data's mean and standard deviation, and the
  test data with the same numbers. Both models train with Adam in batches of --batch for --epochs
  epochs; the training time is the fit alone. The label's classes are its distinct values (numbers
  or names): two classes train Dense(1) with binary cross-entropy, more train Dense(K) with the
  softmax cross-entropy.

  The generated set is scikit-learn's make_classification with its defaults (2 informative and 2
  redundant features, 2 clusters per class, 1% label noise). Its four clusters sit on the corners
  of a square, and the seed decides whether the classes face each other or sit crosswise (an XOR,
  which logistic regression cannot learn): --data-seed 7, the default, gives the first kind, as the
  lecture's set was; --data-seed 42 the second.

Exit status: 0 done, 1 a failure while training or writing, 2 a bad option, 3 bad or missing data.)";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Logistic regression and an MLP on tabular data, with the lecture's table (faltung " +
                   std::string(FALTUNG_VERSION_STRING) + ")",
               "tabular");
  app.footer(footer());
  app.get_formatter()->column_width(30);
  tabular::Options o;
  tabular::add_options(app, o);
  if (const int status = faltung_examples::parse_command_line(app, o, tabular::validate, argc, argv); status >= 0)
    return status;

  faltung::TrainTestSplit<float> data;
  try {
    data = tabular::load_data(o);
    if (!o.write_csv_dir.empty()) {
      std::filesystem::create_directories(o.write_csv_dir);
      const std::string train = o.write_csv_dir + "/train.csv", test = o.write_csv_dir + "/test.csv";
      faltung::write_csv(train, data.train);
      faltung::write_csv(test, data.test);
      std::cout << "Wrote " << train << " (" << data.train.size() << " rows) and " << test << " ("
                << data.test.size() << " rows), " << data.train.num_features() << " features and the label '"
                << data.train.label_name << "'\n";
      return 0;
    }
    faltung_examples::standardize(data);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 3;
  }

  try {
    std::cout << (o.table.csv.empty() ? "Generated set (make_classification, seed " + std::to_string(o.data_seed) + ")"
                                      : o.table.csv)
              << ": " << data.train.size() << " training and " << data.test.size() << " test rows, "
              << data.train.num_features() << " features, " << data.train.num_classes() << " classes; "
              << faltung::num_threads() << " thread(s), batch " << o.table.batch << "\n\n";
    std::vector<tabular::Result> results;
    for (const std::string& m : o.table.models) results.push_back(tabular::train_and_test(m, data, o, std::cout));
    std::cout << tabular::results_table(results, o.table.batch);
    if (!o.results.empty()) tabular::write_results_csv(o.results, results, faltung::num_threads());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
