// The explicit registry of actor types (no static self-registration).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/engine/params.h"
#include "harness/util/result.h"

namespace krepro::engine {

class Actor;
struct CompiledActor;

struct ActorType {
  std::string name;
  std::string help;
  std::vector<ParamSpec> params;
  // Host features (HostProbe names) it cannot run without; "a|b" means either.
  std::vector<std::string> requires_features;
  std::function<std::unique_ptr<Actor>(const CompiledActor&)> make;
};

struct DetectorInfo {
  std::string name;
  std::string help;
};

class Registry {
 public:
  // A duplicate name is an error.
  Result<void> add_actor(ActorType t);
  Result<void> add_detector(DetectorInfo d);
  const ActorType* actor(const std::string& name) const;
  const std::vector<std::unique_ptr<ActorType>>& actors() const { return actors_; }
  const std::vector<DetectorInfo>& detectors() const { return detectors_; }

 private:
  std::vector<std::unique_ptr<ActorType>> actors_;
  std::vector<DetectorInfo> detectors_;
};

// cgroup-churn, netns-churn, ... (engine/actors.cpp).
void register_builtin_actors(Registry& reg);

}  // namespace krepro::engine
