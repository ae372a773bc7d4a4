// Package capacity finds and explains HAL9's capacity: the knee search
// (the highest open-model arrival rate at which an SLO holds), the service
// demand of each route from labelled CPU profiles with the utilisation
// law's prediction, the Universal Scalability Law fitted to the search's
// steps, and the projection of the demands to a fleet of pods.
//
// Files:
//
//   - search.go: Search, the state machine of the ramp's probes, the
//     bisection and the confirmations over a Stepper (one
//     constant-arrival-rate step at a rate), and the Result it writes
//     (the knee, every step, the fit).
//   - steprule.go: how long a step lasts: the samples an SLO quantile
//     needs (order statistics) and the time a queue needs to break it.
//   - stall.go: how long the lab process went without running in a step.
//   - loadstep.go: LoadStepper, the Stepper that runs lab/load's engine:
//     a settle phase then a measured phase, the SLO as k6 thresholds on
//     the measured phase, the engine's own limits judged apart.
//   - usl.go: the USL fit (gonum's Nelder-Mead on least squares).
//   - demand.go: CPU seconds per request by route (pprof labels) and the
//     utilisation law.
//   - fleet.go: pods for the seeds' traffic at production bcrypt cost, and
//     the LLM bill at the measured hit rate.
package capacity
