import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A named step between two durable writes of a load, push, activation or rollout. The fault-matrix tests start
/// adapterd with `ADAPTERD_TEST_CRASH_AT=<step>` and the process kills itself with SIGKILL on reaching that step,
/// as a power cut or the OOM killer would, to prove that a restart from what the step left on disk is consistent
/// and serving. Without the variable (every deployment) reaching a step is one comparison.
public enum CrashPoint: String, Sendable, CaseIterable {
    /// A load's files are in the content-addressed store; no version is registered for them yet.
    case loadImported = "load.imported"
    /// A load's version is in SQLite; the running worker does not serve it yet.
    case loadRegistered = "load.registered"
    /// A push chunk's bytes and its received flag are on disk.
    case pushChunkStored = "push.chunk"
    /// A complete push passed its size, SHA-256 and signature checks and is unpacked; it is not staged yet.
    case pushVerified = "push.verified"
    /// A pushed version is staged (registered); the activation the push asked for has not happened yet.
    case pushStaged = "push.staged"
    /// An activation is in SQLite; the running worker still serves the version before it.
    case activationWritten = "activate.written"
    /// A traffic split is in SQLite; the running worker does not apply it yet.
    case rolloutSaved = "rollout.saved"
    /// The rollout guard's rollback of a canary is in SQLite; the running worker still routes to the canary.
    case rollbackWritten = "rollback.written"
    /// A training's adapter files are written under `{data}/training`; the version is not staged yet.
    case trainingWritten = "training.written"

    /// The environment variable that names the step to die at.
    public static let environmentVariable = "ADAPTERD_TEST_CRASH_AT"

    private static let armed: CrashPoint? = ProcessInfo.processInfo.environment[environmentVariable].flatMap(CrashPoint.init(rawValue:))

    /// Kills this process with SIGKILL when the tests armed this step; otherwise returns at once.
    public static func reached(_ point: CrashPoint) {
        guard armed == point else { return }
        kill(getpid(), SIGKILL)
    }
}
