using System.Formats.Tar;

namespace EdgeEru.Core.Files;

/// <summary>
/// Tar streams as <c>docker cp</c> uses them: one top entry (a file, or a directory and what is below it)
/// named after the copied path. Renaming that top entry is how a copy lands under another name.
/// </summary>
public static class Archives
{
    /// <summary>The name of the top entry of <paramref name="entryName"/> ("www/index.html" → "www").</summary>
    public static string Top(string entryName) => entryName.TrimStart('.', '/').Split('/')[0];

    /// <summary>
    /// Copies a tar, renaming its top entry to <paramref name="newTop"/>; entries outside one top (a second
    /// top name, absolute or '..' paths) are refused: a copy is one thing.
    /// </summary>
    public static async Task RenameTopAsync(Stream input, string newTop, Stream output, CancellationToken ct = default)
    {
        if (newTop.Length == 0 || newTop.Contains('/', StringComparison.Ordinal) || newTop is "." or "..")
            throw new ArgumentException($"\"{newTop}\" is not a file name");
        await using var reader = new TarReader(input, leaveOpen: true);
        await using var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        string? top = null;
        while (await reader.GetNextEntryAsync(copyData: false, ct) is { } entry)
        {
            var name = entry.Name.TrimStart('.', '/');
            if (entry.Name.StartsWith('/') || name.Split('/').Contains(".."))
                throw new InvalidDataException($"the archive's entry \"{entry.Name}\" leaves its folder");
            var first = Top(name);
            top ??= first;
            if (first != top) throw new InvalidDataException($"the archive holds more than one thing ({top}, {first})");
            var renamed = newTop + name[first.Length..];
            var copy = entry.EntryType switch
            {
                TarEntryType.RegularFile or TarEntryType.V7RegularFile => new PaxTarEntry(TarEntryType.RegularFile, renamed)
                {
                    DataStream = entry.DataStream is null ? null : new KnownLength(entry.DataStream, entry.Length),
                },
                TarEntryType.Directory => new PaxTarEntry(TarEntryType.Directory, renamed),
                TarEntryType.SymbolicLink => new PaxTarEntry(TarEntryType.SymbolicLink, renamed) { LinkName = entry.LinkName },
                TarEntryType.HardLink => new PaxTarEntry(TarEntryType.HardLink, renamed)
                {
                    LinkName = Top(entry.LinkName) == top ? newTop + entry.LinkName.TrimStart('.', '/')[top.Length..] : entry.LinkName,
                },
                // Global/extended headers are folded into the entries by the reader; devices and FIFOs are not copied.
                _ => null,
            };
            if (copy is null) continue;
            copy.Mode = entry.Mode;
            copy.Uid = entry.Uid;
            copy.Gid = entry.Gid;
            copy.ModificationTime = entry.ModificationTime;
            await writer.WriteEntryAsync(copy, ct);
        }
        if (top is null) throw new InvalidDataException("the archive is empty");
    }
}

/// <summary>
/// A forward-only stream whose length is known (from the tar header it came with): TarWriter needs a length
/// to write an entry into a stream it cannot seek back in, and this lets it stream the data through.
/// </summary>
internal sealed class KnownLength(Stream inner, long length) : Stream
{
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = inner.Read(buffer, offset, count);
        _position += n;
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken);
        _position += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

