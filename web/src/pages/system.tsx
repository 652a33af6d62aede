import Layout, { Notice } from "@/components/Layout";

export default function Page() {
  return (
    <Layout title="system">
      <Notice>This page is being built.</Notice>
    </Layout>
  );
}
