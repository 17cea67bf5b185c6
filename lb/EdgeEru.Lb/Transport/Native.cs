using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace EdgeEru.Lb.Transport;

/// <summary>The few Linux calls the epoll transport makes (64-bit Linux on x86-64, where epoll_event is packed).</summary>
internal static unsafe partial class Native
{
    public const uint EpollIn = 0x001, EpollOut = 0x004, EpollErr = 0x008, EpollHup = 0x010, EpollRdHup = 0x2000, EpollEt = 1u << 31;
    public const int EpollCtlAdd = 1, EpollCtlDel = 2;
    public const int EpollCloExec = 0x80000;
    public const int MsgNoSignal = 0x4000;
    public const int ShutRdWr = 2;
    private const int EIntr = 4, EAgain = 11;

    /// <summary>Only where struct epoll_event has the layout below.</summary>
    public static bool Supported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public nint Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public nint Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epfd, int op, int fd, EpollEvent* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epfd, EpollEvent* events, int maxEvents, int timeout);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int fd, MsgHdr* msg, int flags);

    /// <summary>recv(2): bytes read, 0 at end of stream, -1 when nothing is there now; other failures throw.</summary>
    public static int Receive(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
            while (true)
            {
                var n = Recv(fd, p, (nuint)buffer.Length, 0);
                if (n >= 0) return (int)n;
                var errno = Marshal.GetLastPInvokeError();
                if (errno == EIntr) continue;
                if (errno == EAgain) return -1;
                throw Error(errno);
            }
    }

    /// <summary>send(2) without SIGPIPE: bytes taken, -1 when the socket buffer is full; other failures throw.</summary>
    public static int Send(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
            while (true)
            {
                var n = Send(fd, p, (nuint)data.Length, MsgNoSignal);
                if (n >= 0) return (int)n;
                var errno = Marshal.GetLastPInvokeError();
                if (errno == EIntr) continue;
                if (errno == EAgain) return -1;
                throw Error(errno);
            }
    }

    /// <summary>sendmsg(2) of several buffers in one call (a gathered write), like <see cref="Send(int, ReadOnlySpan{byte})"/>.</summary>
    public static int SendGathered(int fd, IoVec* iov, int count)
    {
        var msg = new MsgHdr { Iov = iov, IovLength = (nuint)count };
        while (true)
        {
            var n = SendMsg(fd, &msg, MsgNoSignal);
            if (n >= 0) return (int)n;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr) continue;
            if (errno == EAgain) return -1;
            throw Error(errno);
        }
    }

    /// <summary>The SocketException .NET would raise for this errno.</summary>
    public static SocketException Error(int errno) => new((int)(errno switch
    {
        104 => SocketError.ConnectionReset,   // ECONNRESET
        32 => SocketError.Shutdown,           // EPIPE
        110 => SocketError.TimedOut,          // ETIMEDOUT
        111 => SocketError.ConnectionRefused, // ECONNREFUSED
        113 => SocketError.HostUnreachable,   // EHOSTUNREACH
        101 => SocketError.NetworkUnreachable, // ENETUNREACH
        9 => SocketError.OperationAborted,    // EBADF: closed under us
        _ => SocketError.SocketError,
    }));
}
