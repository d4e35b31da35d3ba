#include "harness/engine/registry.h"

namespace krepro::engine {

ActorType cgroup_churn_type();
ActorType netns_churn_type();
ActorType tikv_write_type();
ActorType blkio_throttle_type();

Result<void> Registry::add_actor(ActorType t) {
  if (actor(t.name)) return make_error(EEXIST, "actor type '" + t.name + "' registered twice");
  actors_.push_back(std::make_unique<ActorType>(std::move(t)));
  return {};
}

Result<void> Registry::add_detector(DetectorInfo d) {
  for (const auto& x : detectors_)
    if (x.name == d.name) return make_error(EEXIST, "detector '" + d.name + "' registered twice");
  detectors_.push_back(std::move(d));
  return {};
}

const ActorType* Registry::actor(const std::string& name) const {
  for (const auto& a : actors_)
    if (a->name == name) return a.get();
  return nullptr;
}

void register_builtin_actors(Registry& reg) {
  // The list is explicit so a static library needs no whole-archive link.
  reg.add_actor(cgroup_churn_type()).value();
  reg.add_actor(netns_churn_type()).value();
  reg.add_actor(tikv_write_type()).value();
  reg.add_actor(blkio_throttle_type()).value();
}

}  // namespace krepro::engine
