#include "server/structured/async_mask_filler.h"

#include <utility>

namespace moeserve::structured {

AsyncMaskFiller::AsyncMaskFiller() : thread_([this] { Loop(); }) {}

AsyncMaskFiller::~AsyncMaskFiller() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void AsyncMaskFiller::Start(std::vector<Job> jobs) {
  absl::MutexLock lock(&mu_);
  jobs_ = std::move(jobs);
  pending_ = !jobs_.empty();
}

void AsyncMaskFiller::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* pending) { return !*pending; }, &pending_));
}

void AsyncMaskFiller::Loop() {
  while (true) {
    std::vector<Job> jobs;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](AsyncMaskFiller* f)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return f->stop_ || (f->pending_ && !f->jobs_.empty()); },
          this));
      if (stop_) return;
      jobs.swap(jobs_);
    }
    for (const Job& job : jobs) job.constraint->FillMasks(job.drafts, job.masks);
    absl::MutexLock lock(&mu_);
    pending_ = false;
  }
}

}  // namespace moeserve::structured
