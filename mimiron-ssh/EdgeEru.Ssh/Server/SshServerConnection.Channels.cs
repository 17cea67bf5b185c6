using EdgeEru.Ssh.Connection;
using EdgeEru.Ssh.Wire;

namespace EdgeEru.Ssh.Server;

// The connection protocol (RFC 4254) after a login: session channels, their messages, global requests.
internal sealed partial class SshServerConnection
{
    private readonly Dictionary<uint, SessionChannel> _channels = [];
    private uint _nextChannel;

    private async Task ServeChannelsAsync(CancellationToken ct)
    {
        while (true)
        {
            Info.Algorithms = _transport.Algorithms;
            Info.KeyExchanges = _transport.KeyExchanges;
            // A finished channel whose close went both ways frees its number's slot.
            foreach (var id in _channels.Where(c => c.Value.Closed && c.Value.Completion.IsCompleted).Select(c => c.Key).ToList())
                _channels.Remove(id);
            var payload = await _transport.ReceiveAsync(ct);
            var r = new SshReader(payload.Span);
            var msg = r.Byte();
            switch (msg)
            {
                case MessageNumber.GlobalRequest:
                {
                    r.Utf8("request name");
                    // Nothing global is offered (no forwarding); keepalive@openssh.com only wants an answer, and a failure is one.
                    if (r.Boolean("want reply")) await _transport.SendAsync(new SshWriter(8).Byte(MessageNumber.RequestFailure), ct);
                    break;
                }
                case MessageNumber.ChannelOpen:
                {
                    var type = r.Utf8("channel type");
                    var sender = r.UInt32("sender channel");
                    var window = r.UInt32("initial window size");
                    var maxPacket = r.UInt32("maximum packet size");
                    await OpenChannelAsync(type, sender, window, maxPacket, ct);
                    break;
                }
                case MessageNumber.ChannelWindowAdjust:
                    Channel(ref r).OnWindowAdjust(r.UInt32("bytes to add"));
                    break;
                case MessageNumber.ChannelData:
                {
                    var c = Channel(ref r);
                    var offset = payload.Length - r.Remaining + 4;
                    var n = r.String("data").Length;
                    await c.OnDataAsync(payload.Slice(offset, n), false);
                    break;
                }
                case MessageNumber.ChannelExtendedData:
                {
                    var c = Channel(ref r);
                    r.UInt32("data type");
                    var offset = payload.Length - r.Remaining + 4;
                    var n = r.String("data").Length;
                    await c.OnDataAsync(payload.Slice(offset, n), true); // counted against the window, then dropped
                    break;
                }
                case MessageNumber.ChannelEof:
                    Channel(ref r).OnEof();
                    break;
                case MessageNumber.ChannelClose:
                    await Channel(ref r).OnCloseAsync();
                    break;
                case MessageNumber.ChannelRequest:
                {
                    var c = Channel(ref r);
                    var type = r.Utf8("request type");
                    var wantReply = r.Boolean("want reply");
                    var ok = c.OnRequest(type, ref r);
                    if (wantReply && !c.Closed)
                    {
                        var reply = ok ? MessageNumber.ChannelSuccess : MessageNumber.ChannelFailure;
                        await _transport.SendAsync(new SshWriter(8).Byte(reply).UInt32(c.RemoteId), ct);
                    }
                    c.Launch();
                    break;
                }
                case MessageNumber.ChannelSuccess or MessageNumber.ChannelFailure
                    or MessageNumber.RequestSuccess or MessageNumber.RequestFailure:
                    break; // we send no requests that want replies
                case MessageNumber.UserAuthRequest:
                    break; // RFC 4252 §5.1: ignored after success
                default:
                    await Unimplemented(ct);
                    break;
            }
        }
    }

    private SessionChannel Channel(ref SshReader r)
    {
        var id = r.UInt32("recipient channel");
        if (!_channels.TryGetValue(id, out var c)) throw new SshProtocolException($"message for channel {id}, which is not open");
        return c;
    }

    private async Task OpenChannelAsync(string type, uint sender, uint window, uint maxPacket, CancellationToken ct)
    {
        async Task Refuse(uint code, string why) =>
            await _transport.SendAsync(
                new SshWriter().Byte(MessageNumber.ChannelOpenFailure).UInt32(sender).UInt32(code).String(why).String(""), ct);
        if (type != "session")
        {
            // 1: administratively prohibited (a type we know and do not offer); 3: unknown channel type.
            var code = type is "direct-tcpip" or "x11" or "forwarded-tcpip" or "auth-agent@openssh.com" ? 1u : 3u;
            await Refuse(code, $"{type} channels are not offered");
            return;
        }
        if (_channels.Count >= _options.MaxChannels)
        {
            await Refuse(4, $"at most {_options.MaxChannels} channels per connection");
            return;
        }
        while (_channels.ContainsKey(_nextChannel)) _nextChannel++;
        var id = _nextChannel++;
        _channels[id] = new SessionChannel(id, sender, window, maxPacket, _transport, _handler, Info, _options, _log, ct);
        await _transport.SendAsync(new SshWriter().Byte(MessageNumber.ChannelOpenConfirmation).UInt32(sender).UInt32(id)
            .UInt32(_options.ChannelWindow).UInt32(_options.ChannelMaxPacket), ct);
    }
}
