import AdapterdClient
import CanaryJudging

extension CanaryFigures {
    /// The figures of (name, version) summed over workers' metrics `documents` (all since each worker loaded it).
    public init(name: String, version: String, documents: [MetricsSnapshot]) {
        self.init()
        for document in documents {
            guard let figures = document.adapters.first(where: { $0.name == name && $0.version == version }) else { continue }
            var one = CanaryFigures(
                requests: figures.requestsTotal, errors: figures.errorsTotal.values.reduce(0) { $0 &+ max(0, $1) },
                p95Ms: figures.latencyTotalMs?.p95 ?? figures.latencyMs?.p95, labels: figures.labelsTotal ?? [:],
                meanConfidence: figures.meanConfidence)
            if let shadow = figures.shadow {
                CanaryFigures.add(&one.shadowCompared, shadow.labelled)
                CanaryFigures.add(&one.shadowAgreed, min(shadow.agreed, shadow.labelled))
            }
            add(one)
        }
    }
}
