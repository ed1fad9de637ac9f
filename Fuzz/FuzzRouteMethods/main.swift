// libFuzzer target: the route and router methods through the worker's RPC server, without a broker: the first
// byte picks SetRoute, DeleteRoute, ListRoutes, LoadAdapter (a router or adapter directory by path) or ClearSession
// (router choices are kept per session), the rest is the request. Every input gets one typed reply, never a trap.
// Built by scripts/fuzz with -sanitize=fuzzer.
import FuzzSupport

runHandlerFuzzer(methods: ["SetRoute", "DeleteRoute", "ListRoutes", "LoadAdapter", "ClearSession"])
