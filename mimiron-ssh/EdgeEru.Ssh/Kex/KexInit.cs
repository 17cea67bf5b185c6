using System.Security.Cryptography;
using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Kex;

/// <summary>SSH_MSG_KEXINIT (RFC 4253 §7.1): the algorithm lists of one side.</summary>
internal sealed record KexInit(
    string[] Kex, string[] HostKey, string[] CipherCtoS, string[] CipherStoC, string[] MacCtoS, string[] MacStoC,
    string[] CompressionCtoS, string[] CompressionStoC, bool FirstKexPacketFollows)
{
    /// <summary>Pseudo-algorithms in the kex list that signal extensions rather than name a method.</summary>
    public const string ExtInfoClient = "ext-info-c";
    public const string ExtInfoServer = "ext-info-s";
    public const string StrictClient = "kex-strict-c-v00@openssh.com";
    public const string StrictServer = "kex-strict-s-v00@openssh.com";

    public byte[] Encode()
    {
        var w = new SshWriter(512).Byte(MessageNumber.KexInit);
        Span<byte> cookie = stackalloc byte[16];
        RandomNumberGenerator.Fill(cookie);
        w.Raw(cookie);
        foreach (var list in new[] { Kex, HostKey, CipherCtoS, CipherStoC, MacCtoS, MacStoC, CompressionCtoS, CompressionStoC, [], [] })
            w.NameList(list);
        return w.Boolean(FirstKexPacketFollows).UInt32(0).ToArray();
    }

    public static KexInit Decode(ReadOnlySpan<byte> payload)
    {
        var r = new SshReader(payload);
        if (r.Byte("message number") != MessageNumber.KexInit) throw new SshProtocolException("expected KEXINIT");
        r.Raw(16, "KEXINIT cookie");
        var k = new KexInit(r.NameList("kex algorithms"), r.NameList("host key algorithms"), r.NameList("ciphers client to server"),
            r.NameList("ciphers server to client"), r.NameList("MACs client to server"), r.NameList("MACs server to client"),
            r.NameList("compression client to server"), r.NameList("compression server to client"), false);
        r.NameList("languages client to server");
        r.NameList("languages server to client");
        var follows = r.Boolean("first_kex_packet_follows");
        r.UInt32("KEXINIT reserved");
        return k with { FirstKexPacketFollows = follows };
    }
}

/// <summary>The outcome of negotiation: the first client algorithm the server also supports, for each list (RFC 4253 §7.1).</summary>
internal sealed record Negotiated(string Kex, string HostKey, string CipherCtoS, string CipherStoC, string? MacCtoS, string? MacStoC)
{
    public static Negotiated From(KexInit client, KexInit server, Func<string, bool> isAead)
    {
        static string Pick(string[] client, string[] server, string what)
        {
            foreach (var c in client)
                if (server.Contains(c)) return c;
            throw new SshProtocolException(
                $"no matching {what}: client offers {string.Join(",", client)}; server supports {string.Join(",", server)}",
                DisconnectReason.KeyExchangeFailed);
        }

        string[] Methods(string[] kex) => kex
            .Where(k => k is not (KexInit.ExtInfoClient or KexInit.ExtInfoServer or KexInit.StrictClient or KexInit.StrictServer)
                && !k.StartsWith("ext-info-", StringComparison.Ordinal))
            .ToArray();

        var cs = Pick(client.CipherCtoS, server.CipherCtoS, "cipher client to server");
        var sc = Pick(client.CipherStoC, server.CipherStoC, "cipher server to client");
        Pick(client.CompressionCtoS, server.CompressionCtoS, "compression client to server");
        Pick(client.CompressionStoC, server.CompressionStoC, "compression server to client");
        return new Negotiated(
            Pick(Methods(client.Kex), Methods(server.Kex), "key exchange algorithm"),
            Pick(client.HostKey, server.HostKey, "host key algorithm"),
            cs, sc,
            isAead(cs) ? null : Pick(client.MacCtoS, server.MacCtoS, "MAC client to server"),
            isAead(sc) ? null : Pick(client.MacStoC, server.MacStoC, "MAC server to client"));
    }

    /// <summary>A client's guessed first kex packet is right when its first kex and host key algorithms are the ones chosen.</summary>
    public bool GuessWasRight(KexInit client) =>
        client.Kex.Length > 0 && client.Kex[0] == Kex && client.HostKey.Length > 0 && client.HostKey[0] == HostKey;
}
