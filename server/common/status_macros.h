#ifndef MOESERVE_SERVER_COMMON_STATUS_MACROS_H_
#define MOESERVE_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// RETURN_IF_ERROR(expr): returns the status of `expr` from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::absl::Status _moeserve_status = (expr);            \
    if (!_moeserve_status.ok()) return _moeserve_status; \
  } while (0)

#define MOESERVE_CONCAT_INNER_(a, b) a##b
#define MOESERVE_CONCAT_(a, b) MOESERVE_CONCAT_INNER_(a, b)

// ASSIGN_OR_RETURN(lhs, expr): evaluates the StatusOr `expr`; on error returns its status, else
// assigns (moves) its value to `lhs`, which may be a declaration (`auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL_(MOESERVE_CONCAT_(_moeserve_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // MOESERVE_SERVER_COMMON_STATUS_MACROS_H_
