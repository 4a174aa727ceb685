import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A scripted HTTP server on loopback for what the real kube-apiserver 1.20 cannot show: newer API
/// versions (EndpointSlices v1) and exact failure answers. Each request is answered by `respond`.
final class FakeAPIServer: Sendable {
    enum Answer: Sendable {
        /// A complete JSON answer.
        case json(status: Int, body: String)
        /// A watch: these lines (one event each), then the response ends after `hold`.
        case watch(lines: [String], hold: TimeAmount)
    }

    struct Request: Sendable, CustomStringConvertible {
        var path: String
        var query: [String: String]
        var description: String { "\(path)?\(query.keys.sorted().map { "\($0)=\(query[$0]!)" }.joined(separator: "&"))" }
        var isWatch: Bool { query["watch"] == "1" || query["watch"] == "true" }
    }

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel
    private let log = NIOLockedValueBox<[Request]>([])
    let port: Int

    init(port: Int = 0, respond: @escaping @Sendable (Request) -> Answer) throws {
        let log = self.log
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(respond: respond, log: log))
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
        self.port = channel.localAddress?.port ?? 0
    }

    var url: String { "http://127.0.0.1:\(port)" }
    var requests: [Request] { log.withLockedValue { $0 } }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let respond: @Sendable (Request) -> Answer
        let log: NIOLockedValueBox<[Request]>
        var head: HTTPRequestHead?

        init(respond: @escaping @Sendable (Request) -> Answer, log: NIOLockedValueBox<[Request]>) {
            self.respond = respond
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let head else { return }
                let components = URLComponents(string: head.uri)
                var query: [String: String] = [:]
                for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
                let request = Request(path: components?.path ?? head.uri, query: query)
                log.withLockedValue { $0.append(request) }
                answer(respond(request), context: context)
            }
        }

        private func answer(_ answer: Answer, context: ChannelHandlerContext) {
            switch answer {
            case let .json(status, body):
                var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.utf8.count)")])
                headers.add(name: "Connection", value: "keep-alive")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case let .watch(lines, hold):
                let headers = HTTPHeaders([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                for line in lines {
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: line + "\n")))), promise: nil)
                }
                context.flush()
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: hold) {
                    let (handler, context) = bound.value
                    context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                }
            }
        }
    }
}

/// JSON the fake server answers with.
enum FakeJSON {
    static func list(kind: String, resourceVersion: String, items: [String]) -> String {
        #"{"kind":"\#(kind)List","apiVersion":"v1","metadata":{"resourceVersion":"\#(resourceVersion)"},"items":[\#(items.joined(separator: ","))]}"#
    }

    static func service(_ ns: String, _ name: String, rv: String) -> String {
        #"{"metadata":{"name":"\#(name)","namespace":"\#(ns)","resourceVersion":"\#(rv)"},"spec":{"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"ports":[{"name":"http","port":80,"protocol":"TCP"}]}}"#
    }

    /// A discovery.k8s.io/v1 slice: `nodeName` and `zone`, no `topology`.
    static func sliceV1(_ ns: String, _ name: String, service: String, rv: String, node: String, zone: String) -> String {
        #"{"metadata":{"name":"\#(name)","namespace":"\#(ns)","resourceVersion":"\#(rv)","labels":{"kubernetes.io/service-name":"\#(service)"}},"addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],"endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"\#(node)","zone":"\#(zone)","hints":{"forZones":[{"name":"\#(zone)"}]}}]}"#
    }

    static func event(_ type: String, _ object: String) -> String { #"{"type":"\#(type)","object":\#(object)}"# }

    static func status(code: Int, reason: String, message: String) -> String {
        #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"\#(message)","reason":"\#(reason)","code":\#(code)}"#
    }

    static func discovery(_ versions: [String]) -> String {
        let v = versions.map { #"{"groupVersion":"discovery.k8s.io/\#($0)","version":"\#($0)"}"# }.joined(separator: ",")
        return #"{"kind":"APIGroup","apiVersion":"v1","name":"discovery.k8s.io","versions":[\#(v)],"preferredVersion":{"groupVersion":"discovery.k8s.io/\#(versions[0])","version":"\#(versions[0])"}}"#
    }
}
