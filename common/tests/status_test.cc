#include <memory>

#include <boost/test/unit_test.hpp>

#include "keyline/common/status.h"

namespace keyline {
namespace {

StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return OutOfRangeError("value " + std::to_string(v) + " must be positive");
  return v;
}

Status DoubleIfPositive(int v, int* out) {
  ASSIGN_OR_RETURN(int parsed, ParsePositive(v));
  *out = parsed * 2;
  return Status::Ok();
}

Status ChainTwo(int a, int b, int* out) {
  RETURN_IF_ERROR(DoubleIfPositive(a, out));
  RETURN_IF_ERROR(ParsePositive(b));
  return Status::Ok();
}

BOOST_AUTO_TEST_SUITE(StatusTests)

BOOST_AUTO_TEST_CASE(DefaultStatusIsOk) {
  Status s;
  BOOST_TEST(s.ok());
  BOOST_TEST(s.ToString() == "OK");
}

BOOST_AUTO_TEST_CASE(ErrorCarriesCodeAndMessage) {
  Status s = NotFoundError("product 'ecu-x' is not configured");
  BOOST_TEST(!s.ok());
  BOOST_TEST(s.code() == StatusCode::kNotFound);
  BOOST_TEST(s.ToString() == "NOT_FOUND: product 'ecu-x' is not configured");
  BOOST_TEST(s.WithContext("KeyPackageRequest").message() ==
             "KeyPackageRequest: product 'ecu-x' is not configured");
}

BOOST_AUTO_TEST_CASE(AssignOrReturnPropagatesError) {
  int out = 0;
  BOOST_TEST(DoubleIfPositive(21, &out).ok());
  BOOST_TEST(out == 42);
  Status s = DoubleIfPositive(-1, &out);
  BOOST_TEST(s.code() == StatusCode::kOutOfRange);
  BOOST_TEST(s.message() == "value -1 must be positive");
}

BOOST_AUTO_TEST_CASE(ReturnIfErrorStopsAtFirstFailure) {
  int out = 0;
  BOOST_TEST(ChainTwo(1, 2, &out).ok());
  Status s = ChainTwo(1, 0, &out);
  BOOST_TEST(s.message() == "value 0 must be positive");
}

BOOST_AUTO_TEST_CASE(StatusOrHoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> v = std::make_unique<int>(7);
  BOOST_REQUIRE(v.ok());
  std::unique_ptr<int> p = std::move(v).value();
  BOOST_TEST(*p == 7);
  StatusOr<std::unique_ptr<int>> e = InternalError("x");
  BOOST_TEST(!e.ok());
  BOOST_TEST(e.status().code() == StatusCode::kInternal);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline
