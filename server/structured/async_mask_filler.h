#ifndef MOESERVE_SERVER_STRUCTURED_ASYNC_MASK_FILLER_H_
#define MOESERVE_SERVER_STRUCTURED_ASYNC_MASK_FILLER_H_

// AsyncMaskFiller: computes the token masks of a step's constrained samples on a background
// thread, so that the CPU work overlaps the forward pass; the masks are needed only at sampling.
//
//   filler.Start(jobs);            // before the forward pass
//   ... forward ...
//   filler.Wait();                 // before sampling; the constraints are the caller's again
//
// Between Start and Wait the jobs' constraints, drafts and masks belong to the filler's thread. Start and
// Wait must be called from one thread (the engine thread); Wait without a pending Start returns
// at once.

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/structured/output_constraint.h"

namespace moeserve::structured {

class AsyncMaskFiller {
 public:
  struct Job {
    OutputConstraint* constraint = nullptr;
    absl::Span<const int32_t> drafts;  // the sample's draft tokens this step (usually none)
    uint32_t* masks = nullptr;         // (1 + drafts.size()) * constraint->mask_words() words
  };

  AsyncMaskFiller();
  ~AsyncMaskFiller();
  AsyncMaskFiller(const AsyncMaskFiller&) = delete;
  AsyncMaskFiller& operator=(const AsyncMaskFiller&) = delete;

  // Starts filling the jobs' masks. REQUIRES: no Start pending (Wait returned).
  void Start(std::vector<Job> jobs);
  // Blocks until the jobs of the last Start are done.
  void Wait();

 private:
  void Loop();

  absl::Mutex mu_;
  std::vector<Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace moeserve::structured

#endif  // MOESERVE_SERVER_STRUCTURED_ASYNC_MASK_FILLER_H_
