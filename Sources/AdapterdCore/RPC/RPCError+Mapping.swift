import AdapterEngine
import AdapterFormats
import AdapterRuntime
import AdapterTraining
import FederatedLearning
import MQTTRPC

extension RPCError {
    /// The RPC status and message for an error a handler threw: the one place domain errors become statuses.
    public init(mapping error: any Error) {
        switch error {
        case let error as RPCError:
            self = error
        case let error as RegistryError:
            self.init(error.status, error.description)
        case let error as StoreError:
            self.init(error.status, error.description)
        case let error as PushError:
            self.init(error.status, error.description)
        case let error as HandlerError:
            self.init(error.status, error.description)
        case let error as AdapterResolver.Failure:
            self.init(error.status, error.description)
        case let error as TrainingError:
            self.init(error.status, error.description)
        case let error as TrainingJobs.Refusal:
            self.init(error.status, error.description)
        case let error as FederatedRounds.Refusal:
            self.init(error.status, error.description)
        case let error as FederatedError:
            self.init(.invalidArgument, error.description)
        case let error as InferenceError:
            self.init(.invalidArgument, error.description)
        case let error as AdapterError:
            // Adapters that fail validation are refused at load; what reaches a request is a blend that cannot be made.
            self.init(.failedPrecondition, error.description)
        default:
            self.init(.internal, "\(error)")
        }
    }
}

extension RegistryError {
    /// The status a registry refusal is reported with.
    var status: RPCStatus {
        switch self {
        case .store(let error): return error.status
        case .notLoaded, .noDirectory: return .notFound
        case .refused, .splitToUnloaded, .unknownReference: return .failedPrecondition
        case .invalidRouteTopic, .invalidSplits, .invalidConfidence, .invalidRouteBlend: return .invalidArgument
        case .notKind, .kindTaken: return .failedPrecondition
        case .limit: return .resourceExhausted
        case .engineStopping: return .unavailable
        }
    }
}

extension StoreError {
    /// The status a store refusal is reported with.
    var status: RPCStatus {
        switch self {
        case .invalidName: return .invalidArgument
        case .notAnAdapter, .invalidTransition, .nothingToRollBackTo, .notRegularFile: return .failedPrecondition
        case .notFound: return .notFound
        case .conflict: return .alreadyExists
        case .noSpace, .limit: return .resourceExhausted
        case .unreadable, .unwritable, .database: return .internal
        }
    }
}

extension PushError {
    /// The status a push failure is reported with.
    var status: RPCStatus {
        switch self {
        case .invalidManifest, .chunkLength, .malformedBundle: return .invalidArgument
        case .tooLarge, .insufficientSpace, .diskFull: return .resourceExhausted
        case .unsigned: return .unauthenticated
        case .untrustedSignature: return .permissionDenied
        case .notStarted: return .notFound
        case .chunkOutOfRange: return .outOfRange
        case .incomplete, .pieceGone: return .failedPrecondition
        case .sizeMismatch, .digestMismatch: return .dataLoss
        case .io: return .internal
        }
    }
}

extension HandlerError {
    /// The status a handler's own refusal is reported with.
    var status: RPCStatus {
        switch self {
        case .missingField, .invalidField, .missingPushStep, .missingFederatedStep: return .invalidArgument
        case .outsideAdapterRoots: return .permissionDenied
        case .trainingDisabled: return .failedPrecondition
        case .expiredWaiting: return .deadlineExceeded
        }
    }
}

extension TrainingError {
    /// The status a training refusal is reported with.
    var status: RPCStatus {
        switch self {
        case .invalidOptions, .shape, .invalidExamples, .unknownLabel: return .invalidArgument
        case .tooLarge: return .resourceExhausted
        case .cancelled: return .cancelled
        case .unreadable, .unwritable: return .internal
        case .diverged: return .aborted
        }
    }
}

extension TrainingJobs.Refusal {
    /// The status a refused training job is reported with.
    var status: RPCStatus {
        switch self {
        case .busy: return .resourceExhausted
        case .exists: return .alreadyExists
        case .notTraining: return .notFound
        }
    }
}

extension AdapterResolver.Failure {
    /// The status a resolution failure is reported with.
    var status: RPCStatus {
        switch self {
        case .explicitAdapterForbidden: return .permissionDenied
        case .versionNeedsAdapter: return .invalidArgument
        case .weightsUnavailable: return .unavailable
        case .invalidBlend: return .invalidArgument
        }
    }
}

extension FederatedRounds.Refusal {
    /// The status a refused federated step is reported with.
    var status: RPCStatus {
        switch self {
        case .wrongBaseModel, .tooFewExamples, .notReady: return .failedPrecondition
        case .busy: return .resourceExhausted
        case .tooLarge: return .resourceExhausted
        case .unknownRound: return .notFound
        case .chunkOutOfRange: return .outOfRange
        case .chunkLength, .invalidOffer: return .invalidArgument
        case .digestMismatch: return .dataLoss
        }
    }
}
