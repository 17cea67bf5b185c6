using System.Globalization;
using System.Text;

namespace EdgeEru.Agent.Logs;

/// <summary>
/// RFC 5424 messages for syslog sinks (rsyslog and friends): HOSTNAME is the node, APP-NAME the app,
/// PROCID the ident, MSGID the entrypoint; stdout lines are severity info, stderr lines err; the fields
/// also go in structured data under <c>eru@32473</c> (32473: the enterprise number RFC 5612 sets aside
/// for examples). Over TCP each message is framed by octet counting (RFC 6587).
/// </summary>
public static class Syslog
{
    public const string SdId = "eru@32473";

    public static byte[] Format(LogRecord r, int facility)
    {
        var severity = r.Stream == "stderr" ? 3 : 6;
        var sb = new StringBuilder(r.Line.Length + 200);
        sb.Append('<').Append((facility * 8 + severity).ToString(CultureInfo.InvariantCulture)).Append(">1 ");
        sb.Append(r.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture)).Append(' ');
        sb.Append(Field(r.Node, 255)).Append(' ').Append(Field(r.App, 48)).Append(' ')
            .Append(Field(r.Ident, 128)).Append(' ').Append(Field(r.Entrypoint, 32)).Append(' ');
        sb.Append('[').Append(SdId);
        Param(sb, "app", r.App);
        Param(sb, "entrypoint", r.Entrypoint);
        Param(sb, "ident", r.Ident);
        Param(sb, "stream", r.Stream);
        sb.Append("] ");
        var head = Encoding.UTF8.GetBytes(sb.ToString());
        var msg = Encoding.UTF8.GetBytes(r.Line);
        // MSG is UTF-8, announced by the BOM (RFC 5424 6.4).
        var bytes = new byte[head.Length + 3 + msg.Length];
        head.CopyTo(bytes, 0);
        bytes[head.Length] = 0xEF;
        bytes[head.Length + 1] = 0xBB;
        bytes[head.Length + 2] = 0xBF;
        msg.CopyTo(bytes, head.Length + 3);
        return bytes;
    }

    /// <summary>RFC 6587 octet counting: "LEN SP MSG".</summary>
    public static byte[] Frame(byte[] message)
    {
        var prefix = Encoding.ASCII.GetBytes(message.Length.ToString(CultureInfo.InvariantCulture) + " ");
        var framed = new byte[prefix.Length + message.Length];
        prefix.CopyTo(framed, 0);
        message.CopyTo(framed, prefix.Length);
        return framed;
    }

    /// <summary>Header fields are printable US-ASCII without spaces, bounded in length; "-" when empty.</summary>
    private static string Field(string value, int max)
    {
        var clean = new string(value.Where(c => c is > ' ' and < (char)127).Take(max).ToArray());
        return clean.Length == 0 ? "-" : clean;
    }

    private static void Param(StringBuilder sb, string name, string value)
    {
        sb.Append(' ').Append(name).Append("=\"");
        foreach (var c in value)
        {
            if (c is '"' or '\\' or ']') sb.Append('\\');
            sb.Append(c);
        }
        sb.Append('"');
    }
}
