using System.Buffers.Binary;
using ARSoft.Tools.Net.Dns;
using EdgeEru.Dns.Answers;
using EdgeEru.Dns.Wire;

namespace EdgeEru.Dns.Tests;

/// <summary>Builds query packets by hand (so tests can also build wrong ones) and parses answers with ARSoft.Tools.Net.</summary>
internal static class Query
{
    public static byte[] Build(string name, ushort type, ushort id = 0x1234, int? ednsSize = 1232, int ednsVersion = 0,
        int opcode = 0, ushort qclass = DnsClass.IN, bool rd = true, byte[]? ednsOption = null, bool dnssecOk = true)
    {
        var bytes = new List<byte>();
        void U16(int v) { bytes.Add((byte)(v >> 8)); bytes.Add((byte)v); }
        U16(id);
        bytes.Add((byte)((opcode << 3) | (rd ? 1 : 0)));
        bytes.Add(0);
        U16(1); U16(0); U16(0); U16(ednsSize is null ? 0 : 1);
        foreach (var label in name.TrimEnd('.').Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            bytes.Add((byte)label.Length);
            bytes.AddRange(System.Text.Encoding.ASCII.GetBytes(label));
        }
        bytes.Add(0);
        U16(type); U16(qclass);
        if (ednsSize is { } size)
        {
            bytes.Add(0); U16(DnsType.OPT); U16(size);
            bytes.Add(0); bytes.Add((byte)ednsVersion); U16(dnssecOk ? (ushort)0x8000 : (ushort)0); // DO: copied into the answer
            var opt = ednsOption ?? [];
            U16(opt.Length); bytes.AddRange(opt);
        }
        return [.. bytes];
    }

    public static byte[] Raw(QueryProcessor p, byte[] query, bool tcp = false)
    {
        var buffer = new byte[DnsLimits.MaxMessage];
        var outcome = p.Process(query, buffer, tcp);
        return buffer[..outcome.Length];
    }

    public static DnsMessage Ask(QueryProcessor p, string name, ushort type, bool tcp = false, int? ednsSize = 1232) =>
        Parse(Raw(p, Build(name, type, ednsSize: ednsSize), tcp));

    public static DnsMessage Parse(byte[] response) => DnsMessage.Parse(new ArraySegment<byte>(response));

    public static int Rcode(byte[] response) => response[3] & 0xF;
    public static ushort Id(byte[] response) => BinaryPrimitives.ReadUInt16BigEndian(response);
}
