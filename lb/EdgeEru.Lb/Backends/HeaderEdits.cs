using System.Text;
using EdgeEru.Registry.Model;

namespace EdgeEru.Lb.Backends;

/// <summary>
/// A backend's header edits (<c>set_request_headers</c>, <c>remove_request_headers</c>,
/// <c>set_response_headers</c>), kept in arrays: a header name is checked against them without allocating.
/// </summary>
internal sealed class HeaderEdits
{
    public static readonly HeaderEdits None = new([], [], []);

    private HeaderEdits((string, string)[] setRequest, string[] removeRequest, (string, string)[] setResponse)
    {
        SetRequest = setRequest;
        RemoveRequest = removeRequest;
        SetResponse = setResponse;
    }

    public static HeaderEdits Of(LbBackendOptions? options) =>
        options is null
            || (options.SetRequestHeaders.Count == 0 && options.RemoveRequestHeaders.Length == 0 && options.SetResponseHeaders.Count == 0)
            ? None
            : new([.. options.SetRequestHeaders.Select(h => (h.Key, h.Value))], [.. options.RemoveRequestHeaders],
                [.. options.SetResponseHeaders.Select(h => (h.Key, h.Value))]);

    /// <summary>Headers the workload gets with these values, whatever the client sent.</summary>
    public (string Name, string Value)[] SetRequest { get; }

    /// <summary>Headers the workload does not get (the LB's X-Forwarded-* too, when named).</summary>
    public string[] RemoveRequest { get; }

    /// <summary>Headers the client gets with these values, whatever the workload sent.</summary>
    public (string Name, string Value)[] SetResponse { get; }

    public bool RemovesRequest(string name) => Contains(RemoveRequest, name);
    public bool RemovesRequest(ReadOnlySpan<byte> name) => Contains(RemoveRequest, name);
    public bool SetsRequest(string name) => Contains(SetRequest, name);
    public bool SetsRequest(ReadOnlySpan<byte> name) => Contains(SetRequest, name);
    public bool SetsResponse(ReadOnlySpan<byte> name) => Contains(SetResponse, name);

    private static bool Contains(string[] names, string name)
    {
        foreach (var n in names)
            if (n.Equals(name, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    private static bool Contains(string[] names, ReadOnlySpan<byte> name)
    {
        foreach (var n in names)
            if (n.Length == name.Length && Ascii.EqualsIgnoreCase(name, n)) return true;
        return false;
    }

    private static bool Contains((string Name, string)[] headers, string name)
    {
        foreach (var h in headers)
            if (h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    private static bool Contains((string Name, string)[] headers, ReadOnlySpan<byte> name)
    {
        foreach (var h in headers)
            if (h.Name.Length == name.Length && Ascii.EqualsIgnoreCase(name, h.Name)) return true;
        return false;
    }
}
