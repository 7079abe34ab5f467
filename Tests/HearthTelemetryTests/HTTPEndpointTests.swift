// HTTPEndpointTests.swift: the listen-address syntax both commands accept.

import HearthTelemetry
import Testing

@Suite("HTTPEndpoint addresses")
struct HTTPEndpointAddressTests {
    @Test("HOST:PORT and :PORT parse; anything else is refused")
    func addresses() {
        #expect(HTTPEndpoint.address("127.0.0.1:4041")! == ("127.0.0.1", 4041))
        #expect(HTTPEndpoint.address(":4041")! == ("0.0.0.0", 4041))
        #expect(HTTPEndpoint.address("[::1]:80")! == ("[::1]", 80))
        #expect(HTTPEndpoint.address("0.0.0.0:0")! == ("0.0.0.0", 0))
        for bad in ["4041", "host:", "host:http", ":70000", ":-1", ""] {
            #expect(HTTPEndpoint.address(bad) == nil, "\(bad)")
        }
    }
}
