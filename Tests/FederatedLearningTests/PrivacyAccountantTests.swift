import AdapterTraining
import FederatedLearning
import Testing

/// The Rényi-DP accountant against values computed apart (Opacus' formula for the Gaussian mechanism, in Python).
@Suite("PrivacyAccountant")
struct PrivacyAccountantTests {
    @Test("ε for σ 1 over 3 and 10 rounds and σ 2 over 10 rounds at δ 1e-5 is Opacus' value")
    func epsilonMatchesOpacus() {
        #expect(abs(PrivacyAccountant(noiseMultiplier: 1).epsilon(rounds: 3, delta: 1e-5) - 9.009959) < 1e-4)
        #expect(abs(PrivacyAccountant(noiseMultiplier: 1).epsilon(rounds: 10, delta: 1e-5) - 19.053598) < 1e-4)
        #expect(abs(DifferentialPrivacy(clip: 1, noiseMultiplier: 2).epsilon(rounds: 10) - 8.079406) < 1e-4)
        #expect(PrivacyAccountant(noiseMultiplier: 1).epsilon(rounds: 0, delta: 1e-5) == 0)
    }

    @Test("settings without a guarantee are refused")
    func invalidSettingsAreRefused() {
        #expect(throws: FederatedError.self) { try DifferentialPrivacy(clip: 0, noiseMultiplier: 1).validate() }
        #expect(throws: FederatedError.self) { try DifferentialPrivacy(clip: 1, noiseMultiplier: -1).validate() }
        #expect(throws: FederatedError.self) { try DifferentialPrivacy(clip: 1, noiseMultiplier: 1, delta: 1).validate() }
    }
}

/// The non-IID split of the study and the tests.
@Suite("DirichletPartition")
struct DirichletPartitionTests {
    @Test("every example goes to exactly one client, the same way for the same seed, and α 0.5 skews the clients' labels")
    func splitIsCompleteAndSeeded() {
        let examples = (0..<120).map { TrainingExample(text: "text \($0)", label: "label \($0 % 6)") }
        let parts = DirichletPartition(alpha: 0.5, seed: 0).split(examples, clients: 6)
        #expect(parts.flatMap { $0 }.map(\.text).sorted() == examples.map(\.text).sorted())
        #expect(parts == DirichletPartition(alpha: 0.5, seed: 0).split(examples, clients: 6))
        #expect(parts != DirichletPartition(alpha: 0.5, seed: 1).split(examples, clients: 6))
        // Strongly non-IID: some client lacks at least two of the six labels.
        #expect(parts.contains { Set($0.map(\.label)).count <= 4 })
    }
}
