namespace EdgeEru.Dns.Wire;

/// <summary>Record types, classes and codes this server speaks (RFC 1035, 2782, 3596, 6891).</summary>
public static class DnsType
{
    public const ushort A = 1;
    public const ushort NS = 2;
    public const ushort CNAME = 5;
    public const ushort SOA = 6;
    public const ushort PTR = 12;
    public const ushort HINFO = 13;
    public const ushort MX = 15;
    public const ushort TXT = 16;
    public const ushort AAAA = 28;
    public const ushort SRV = 33;
    public const ushort OPT = 41;
    public const ushort IXFR = 251;
    public const ushort AXFR = 252;
    public const ushort ANY = 255;

    public static string Name(ushort type) => type switch
    {
        A => "A", NS => "NS", CNAME => "CNAME", SOA => "SOA", PTR => "PTR", HINFO => "HINFO", MX => "MX", TXT => "TXT",
        AAAA => "AAAA", SRV => "SRV", OPT => "OPT", IXFR => "IXFR", AXFR => "AXFR", ANY => "ANY", _ => "other",
    };
}

public static class DnsClass
{
    public const ushort IN = 1;
    public const ushort ANY = 255;
}

public static class DnsRcode
{
    public const int NoError = 0;
    public const int FormErr = 1;
    public const int ServFail = 2;
    public const int NxDomain = 3;
    public const int NotImp = 4;
    public const int Refused = 5;
    /// <summary>Extended (EDNS) rcode 16: only expressible with an OPT record.</summary>
    public const int BadVers = 16;

    public static string Name(int rcode) => rcode switch
    {
        NoError => "NOERROR", FormErr => "FORMERR", ServFail => "SERVFAIL", NxDomain => "NXDOMAIN",
        NotImp => "NOTIMP", Refused => "REFUSED", BadVers => "BADVERS", _ => "other",
    };
}

public static class DnsLimits
{
    /// <summary>Plain DNS over UDP (RFC 1035).</summary>
    public const int ClassicUdp = 512;

    /// <summary>Our EDNS UDP size: the DNS Flag Day 2020 value, safe from IP fragmentation.</summary>
    public const int EdnsUdp = 1232;

    public const int MaxMessage = 65535;
    public const int MaxName = 255;

    /// <summary>Labels a name has at most (127), with room for one more.</summary>
    public const int MaxLabels = 128;
}

/// <summary>Header flags (RFC 1035 4.1.1): QR, AA, TC and RD in the third byte, CD in the fourth.</summary>
public static class DnsFlags
{
    public const byte Qr = 0x80, Aa = 0x04, Tc = 0x02, Rd = 0x01;
    public const byte Cd = 0x10;

    /// <summary>The opcode's bits in the third byte, echoed in replies.</summary>
    public const byte Opcode = 0x78;
}
