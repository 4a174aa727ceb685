import Foundation
@testable import Controller
import Testing

/// `endpoints.kubernetes.io/last-change-trigger-time`: whole seconds (what the EndpointSlice
/// controller writes) and fractional seconds (finer programming latencies) both parse.
struct TriggerTimeTests {
    @Test func parsesWholeAndFractionalSeconds() throws {
        let whole = try #require(ProxyController.parseTime("2026-11-23T11:50:33Z"))
        let fraction = try #require(ProxyController.parseTime("2026-11-23T11:50:33.250Z"))
        #expect(abs(fraction.timeIntervalSince(whole) - 0.25) < 0.001)
        let offset = try #require(ProxyController.parseTime("2026-11-23T12:50:33.5+01:00"))
        #expect(abs(offset.timeIntervalSince(whole) - 0.5) < 0.001)
        #expect(ProxyController.parseTime("yesterday") == nil)
    }
}
