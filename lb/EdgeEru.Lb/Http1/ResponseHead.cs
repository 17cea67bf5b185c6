namespace EdgeEru.Lb.Http1;

/// <summary>How the body of a response from a workload ends.</summary>
internal enum BodyFraming { None, ContentLength, Chunked, UntilClose }

/// <summary>
/// What an exchange needs from a response head, besides the headers it hands on: its length in bytes, how
/// the body ends, the Content-Length it declared (-1: none), and whether the connection may carry another request.
/// </summary>
internal readonly record struct ResponseHead(int Status, int Length, BodyFraming Framing, long ContentLength, bool KeepAlive);
