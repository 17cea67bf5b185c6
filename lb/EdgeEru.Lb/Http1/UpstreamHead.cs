using System.Text;
using EdgeEru.Lb.Backends;
using EdgeEru.Lb.Forwarding;
using Microsoft.Extensions.Primitives;

namespace EdgeEru.Lb.Http1;

/// <summary>
/// The request head a workload gets from either HTTP/1.1 way, the same bytes for the same request: the request
/// line, Host (the workload's own address), the client's headers that pass (not Host, not hop-by-hop, not
/// one of the LB's X-Forwarded-*, not one the backend removes or sets), the LB's X-Forwarded-* (unless the
/// backend removes them) and the backend's set headers. Each way feeds it the request in the form it has
/// (Kestrel's strings, the fast path's bytes); YARP's transformer applies the same rules to its request message.
/// </summary>
internal struct UpstreamHead
{
    private readonly HeadWriter _head;
    private readonly HeaderEdits _edits;
    private string? _priorFor; // the X-Forwarded-For chain the client brought

    /// <summary>A head written afresh into <paramref name="head"/>.</summary>
    public UpstreamHead(HeadWriter head, HeaderEdits edits)
    {
        _head = head;
        _edits = edits;
        head.Clear();
    }

    /// <summary>The request line's method, then its target in one or more pieces (<see cref="Target(string?)"/>).</summary>
    public readonly void Method(string method) => _head.Append(method).Append(" "u8);

    public readonly void Method(ReadOnlySpan<byte> method) => _head.Append(method).Append(" "u8);

    public readonly void Target(string? part) => _head.Append(part);

    public readonly void Target(ReadOnlySpan<byte> part) => _head.Append(part);

    /// <summary>Ends the request line; the workload gets its own address as Host.</summary>
    public readonly void Host(string authority) => _head.Append(" HTTP/1.1\r\nHost: "u8).Append(authority).Append("\r\n"u8);

    /// <summary>A client's header (all its values), written when it passes.</summary>
    public void Header(string name, StringValues values)
    {
        if (ForwardedHeaders.IsFor(name))
            foreach (var v in values) Chain(v);
        if (!Passes(name)) return;
        foreach (var v in values) _head.Append(name).Append(": "u8).Append(v).Append("\r\n"u8);
    }

    /// <summary>A client's header line as raw bytes, written when it passes.</summary>
    public void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        if (ForwardedHeaders.IsFor(name)) Chain(Encoding.ASCII.GetString(value));
        if (!Passes(name)) return;
        _head.Append(name).Append(": "u8).Append(value).Append("\r\n"u8);
    }

    /// <summary>
    /// The LB's X-Forwarded-* (client address, the scheme the client used, its Host), the backend's set headers, and the end of the head.
    /// </summary>
    public readonly void End(string? client, string proto, string? host)
    {
        if (!_edits.RemovesRequest(ForwardedHeaders.For)) AddFor(client);
        if (!_edits.RemovesRequest(ForwardedHeaders.Proto))
            _head.Append(ForwardedHeaders.Proto).Append(": "u8).Append(proto).Append("\r\n"u8);
        if (!_edits.RemovesRequest(ForwardedHeaders.Host)) _head.Append(ForwardedHeaders.Host).Append(": "u8).Append(host).Append("\r\n"u8);
        EndWithSetHeaders();
    }

    /// <summary>As above, with the client's Host as raw bytes.</summary>
    public readonly void End(string? client, string proto, ReadOnlySpan<byte> host)
    {
        if (!_edits.RemovesRequest(ForwardedHeaders.For)) AddFor(client);
        if (!_edits.RemovesRequest(ForwardedHeaders.Proto))
            _head.Append(ForwardedHeaders.Proto).Append(": "u8).Append(proto).Append("\r\n"u8);
        if (!_edits.RemovesRequest(ForwardedHeaders.Host)) _head.Append(ForwardedHeaders.Host).Append(": "u8).Append(host).Append("\r\n"u8);
        EndWithSetHeaders();
    }

    private readonly bool Passes(string name) =>
        !name.Equals("Host", StringComparison.OrdinalIgnoreCase) && !FieldNames.IsHopByHop(name) && !ForwardedHeaders.IsOurs(name)
        && !_edits.RemovesRequest(name) && !_edits.SetsRequest(name);

    private readonly bool Passes(ReadOnlySpan<byte> name) =>
        !Ascii.EqualsIgnoreCase(name, "Host"u8) && !FieldNames.IsHopByHop(name) && !ForwardedHeaders.IsOurs(name)
        && !_edits.RemovesRequest(name) && !_edits.SetsRequest(name);

    private void Chain(string? value) => _priorFor = _priorFor is null ? value : _priorFor + "," + value;

    private readonly void AddFor(string? client) =>
        _head.Append(ForwardedHeaders.For).Append(": "u8).Append(ForwardedHeaders.ForValue(_priorFor, client)).Append("\r\n"u8);

    private readonly void EndWithSetHeaders()
    {
        foreach (var (name, value) in _edits.SetRequest) _head.Append(name).Append(": "u8).Append(value).Append("\r\n"u8);
        _head.Append("\r\n"u8);
    }
}
