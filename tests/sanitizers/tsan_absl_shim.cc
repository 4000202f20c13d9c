// ThreadSanitizer with the system's abseil (TSan builds only: cmake/sanitizers.cmake).
//
// Debian's libabsl_synchronization.so is not instrumented: absl::Mutex, CondVar and Notification
// synchronize through atomics and futexes that TSan never sees, so it would report every access
// they protect as a data race (ours and gRPC's, which locks with absl too). moeserve_test links
// this file into each test binary of a TSan build and exports the binary's symbols, so these
// definitions interpose on the library's for every caller (our code, gRPC, abseil itself). Each
// calls the library's own function (dlsym(RTLD_NEXT)) and tells TSan the happens-before edge it
// made: release before an unlock, acquire after a lock, on the object's address.
//
// absl evaluates a waiter's Condition inside the library, possibly on the thread that unlocks, under
// a lock the shim did not see taken. So every lock, unlock and Condition::Eval also acquires or
// releases one process-wide address. That orders more than the real locks do (it can hide a race
// between sections under two different mutexes) but never less: it reports no false race.
//
// Thread safety: stateless apart from the function pointers, each found once (thread-safe static).

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

#define MOESERVE_TSAN_STR_INNER(x) #x
#define MOESERVE_TSAN_STR(x) MOESERVE_TSAN_STR_INNER(x)

namespace {

char all_locks;  // the process-wide address (see the top of the file)

void Acquire(const void* object) {
  __tsan_acquire(const_cast<void*>(object));
  __tsan_acquire(&all_locks);
}

void Release(const void* object) {
  __tsan_release(const_cast<void*>(object));
  __tsan_release(&all_locks);
}

// The library's definition of the member mangled _ZN[K]4absl<inline namespace><rest>.
template <typename Fn>
Fn Real(bool is_const, const char* rest) {
  const std::string ns = MOESERVE_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(is_const ? "_ZNK4absl" : "_ZN4absl") + std::to_string(ns.size()) + ns + rest;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_shim: %s is not in the abseil libraries\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

#define MOESERVE_REAL(type, is_const, rest) static const auto real = Real<type>(is_const, rest)

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  MOESERVE_REAL(void (*)(Mutex*), false, "5Mutex4LockEv");
  real(this);
  Acquire(this);
}

void Mutex::ReaderLock() {
  MOESERVE_REAL(void (*)(Mutex*), false, "5Mutex10ReaderLockEv");
  real(this);
  Acquire(this);
}

bool Mutex::TryLock() {
  MOESERVE_REAL(bool (*)(Mutex*), false, "5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  MOESERVE_REAL(bool (*)(Mutex*), false, "5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}

void Mutex::Unlock() {
  MOESERVE_REAL(void (*)(Mutex*), false, "5Mutex6UnlockEv");
  Release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  MOESERVE_REAL(void (*)(Mutex*), false, "5Mutex12ReaderUnlockEv");
  Release(this);
  real(this);
}

void Mutex::Await(const Condition& cond) {
  MOESERVE_REAL(void (*)(Mutex*, const Condition&), false, "5Mutex5AwaitERKNS0_9ConditionE");
  Release(this);
  real(this, cond);
  Acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  MOESERVE_REAL(bool (*)(Mutex*, const Condition&, absl::Duration), false,
                "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Release(this);
  const bool met = real(this, cond, timeout);
  Acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  MOESERVE_REAL(bool (*)(Mutex*, const Condition&, absl::Time), false,
                "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Release(this);
  const bool met = real(this, cond, deadline);
  Acquire(this);
  return met;
}

void Mutex::LockWhen(const Condition& cond) {
  MOESERVE_REAL(void (*)(Mutex*, const Condition&), false, "5Mutex8LockWhenERKNS0_9ConditionE");
  real(this, cond);
  Acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  MOESERVE_REAL(void (*)(Mutex*, const Condition&), false, "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  real(this, cond);
  Acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  MOESERVE_REAL(bool (*)(Mutex*, const Condition&, absl::Duration), false,
                "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool met = real(this, cond, timeout);
  Acquire(this);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  MOESERVE_REAL(bool (*)(Mutex*, const Condition&, absl::Time), false,
                "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool met = real(this, cond, deadline);
  Acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  MOESERVE_REAL(bool (*)(Mutex*, const Condition&, absl::Duration), false,
                "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool met = real(this, cond, timeout);
  Acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  MOESERVE_REAL(bool (*)(Mutex*, const Condition&, absl::Time), false,
                "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool met = real(this, cond, deadline);
  Acquire(this);
  return met;
}

bool Condition::Eval() const {
  MOESERVE_REAL(bool (*)(const Condition*), true, "9Condition4EvalEv");
  __tsan_acquire(&all_locks);
  const bool met = real(this);
  __tsan_release(&all_locks);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  MOESERVE_REAL(void (*)(CondVar*, Mutex*), false, "7CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  real(this, mu);
  Acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  MOESERVE_REAL(bool (*)(CondVar*, Mutex*, absl::Duration), false,
                "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  MOESERVE_REAL(bool (*)(CondVar*, Mutex*, absl::Time), false, "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  MOESERVE_REAL(void (*)(Notification*), false, "12Notification6NotifyEv");
  // HasBeenNotified() is inline, an instrumented acquire load of notified_yet_, the member after
  // mutex_: release that address too.
  static_assert(sizeof(Notification) >= sizeof(Mutex) + sizeof(std::atomic<bool>));
  Release(this);
  Release(reinterpret_cast<const char*>(this) + sizeof(Mutex));
  real(this);
}

void Notification::WaitForNotification() const {
  MOESERVE_REAL(void (*)(const Notification*), true, "12Notification19WaitForNotificationEv");
  real(this);
  Acquire(this);
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  MOESERVE_REAL(bool (*)(const Notification*, absl::Duration), true,
                "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) Acquire(this);
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  MOESERVE_REAL(bool (*)(const Notification*, absl::Time), true,
                "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) Acquire(this);
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
